"""Creates the aws plugin's test secrets in a moto server and prints what tests need to know.

Usage: seed.py <endpoint>. Prints one JSON object: {"db_arn": ...}. Every value holds CANARY,
which may appear in a fetched result and never in an error (see the golden harness).
Version ids are fixed with ClientRequestToken so snapshots are stable.
"""
import json
import sys

import boto3

V1 = "11111111-1111-4111-8111-111111111111"
V2 = "22222222-2222-4222-8222-222222222222"

client = boto3.client(
    "secretsmanager",
    endpoint_url=sys.argv[1],
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)

db = client.create_secret(
    Name="prod/db",
    ClientRequestToken=V1,
    SecretString=json.dumps({"username": "app", "password": "CANARY-db-v1", "port": 5432}),
)
# A second version: V2 becomes AWSCURRENT, V1 AWSPREVIOUS.
client.put_secret_value(
    SecretId="prod/db",
    ClientRequestToken=V2,
    SecretString=json.dumps(
        {"username": "app", "password": "CANARY-db-v2", "port": 5432, "tls": True, "opts": {"pool": [1, 2]}}
    ),
)
client.create_secret(Name="plain", SecretString="CANARY plain text\nsecond line")
client.create_secret(Name="json-array", SecretString='["CANARY", 1]')
client.create_secret(Name="not-json", SecretString='{"CANARY": ')
client.create_secret(Name="binary", SecretBinary=b"\x00\xffCANARY\xfe")
client.create_secret(Name="my secret: with spaces", SecretString="CANARY-spaced")
client.create_secret(Name="gone", SecretString="CANARY-gone")
client.delete_secret(SecretId="gone", RecoveryWindowInDays=7)

# A top-level field given twice: an error, as for every JSON secret.
client.create_secret(Name="duplicated", SecretString='{"password": "CANARY-1", "password": "CANARY-2"}')
# A secret of another region, fetched by ARN from a node of us-east-1.
ireland = boto3.client(
    "secretsmanager",
    endpoint_url=sys.argv[1],
    region_name="eu-west-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
eu = ireland.create_secret(Name="eu/db", SecretString=json.dumps({"password": "CANARY-eu"}))

# Parameter Store (the aws-ssm plugin).
ssm = boto3.client(
    "ssm",
    endpoint_url=sys.argv[1],
    region_name="us-east-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
ssm.put_parameter(Name="/app/prod/db/password", Type="SecureString", Value="CANARY-ssm-db-v1")
ssm.put_parameter(Name="/app/prod/db/password", Type="SecureString", Value="CANARY-ssm-db-v2", Overwrite=True)
ssm.label_parameter_version(Name="/app/prod/db/password", ParameterVersion=1, Labels=["previous"])
ssm.put_parameter(Name="/app/prod/db/user", Type="String", Value="app")
ssm.put_parameter(Name="/app/prod/api.key", Type="SecureString", Value="CANARY-ssm-api")
ssm.put_parameter(Name="/app/prod/config", Type="String", Value=json.dumps({"host": "db.internal", "port": 5432, "token": "CANARY-ssm-json"}))
ssm.put_parameter(Name="/app/prod/hosts", Type="StringList", Value="a.internal,b.internal,CANARY-list")
ssm.put_parameter(Name="/app/other/secret", Type="SecureString", Value="CANARY-ssm-other")
ssm.put_parameter(Name="plain-name", Type="String", Value="CANARY-ssm-plain")
# Two names that give one key beneath /clash/.
ssm.put_parameter(Name="/clash/db/password", Type="String", Value="CANARY-clash-1")
ssm.put_parameter(Name="/clash/db_password", Type="String", Value="CANARY-clash-2")
# More than one page (GetParametersByPath gives at most 10 a page).
for i in range(25):
    ssm.put_parameter(Name=f"/many/p{i:02}", Type="String", Value=f"CANARY-many-{i}")
ireland_ssm = boto3.client(
    "ssm",
    endpoint_url=sys.argv[1],
    region_name="eu-west-1",
    aws_access_key_id="testing",
    aws_secret_access_key="testing",
)
ireland_ssm.put_parameter(Name="/eu/app/token", Type="SecureString", Value="CANARY-ssm-eu")
eu_parameter = ireland_ssm.get_parameter(Name="/eu/app/token")["Parameter"]["ARN"]

print(json.dumps({"db_arn": db["ARN"], "eu_arn": eu["ARN"], "eu_parameter_arn": eu_parameter}))
