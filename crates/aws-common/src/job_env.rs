//! What a job's `env {}` may pass to an AWS plugin, declared for the protocol's job-input model
//! (which enforces it before the backend runs).
//!
//! The plugin runs as the Nomad agent's user (usually root) with the node's credentials. A job
//! may bring its own credentials (static keys, or its ECS task role) and choose its region and
//! profile where the operator allows, but it may not choose where credentials are sent
//! (endpoints, container-credential URLs) or make the plugin read files (credential, config and
//! token files): those are the operator's settings. Anything undeclared is refused.

use nomad_secrets_protocol::Variable;

/// The ECS task role's path at the ECS agent.
pub const RELATIVE_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";

/// Every `AWS_*` (and trust-store) variable a job might set, and what it is.
pub const JOB_INPUT: &[Variable] = &[
    Variable::credential(
        "AWS_ACCESS_KEY_ID",
        "access keys",
        "the job's own access key id",
    )
    .by_hand("as for the AWS CLI"),
    Variable::credential(
        "AWS_SECRET_ACCESS_KEY",
        "access keys",
        "the job's own secret access key",
    )
    .by_hand("as for the AWS CLI"),
    Variable::credential_extra(
        "AWS_SESSION_TOKEN",
        "access keys",
        "the session token of temporary access keys",
    )
    .by_hand("as for the AWS CLI"),
    // A relative URI goes to the fixed ECS agent address 169.254.170.2.
    Variable::credential(
        RELATIVE_URI,
        "ECS task role",
        "the job's ECS task role, from the ECS agent at the fixed address 169.254.170.2",
    )
    .by_hand("as for the AWS CLI"),
    Variable::refused("AWS_DEFAULT_REGION", "use `AWS_REGION`")
        .by_hand("the region when `AWS_REGION` is unset"),
    Variable::refused(
        "AWS_ENDPOINT_URL*",
        "the operator sets `endpoint_url` in the settings file",
    )
    .by_hand("`endpoint_url`, as for the AWS CLI"),
    Variable::refused(
        "AWS_CONFIG_FILE",
        "the operator sets `config_file` in the settings file",
    )
    .by_hand("`config_file`, as for the AWS CLI"),
    Variable::refused(
        "AWS_SHARED_CREDENTIALS_FILE",
        "the operator sets `credentials_file` in the settings file",
    )
    .by_hand("`credentials_file`, as for the AWS CLI"),
    Variable::refused(
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "the operator sets `imds_endpoint` in the settings file",
    )
    .by_hand("`imds_endpoint`, as for the AWS CLI"),
    Variable::refused(
        "AWS_EC2_METADATA_DISABLED",
        "the operator sets `imds_endpoint` in the settings file",
    )
    .by_hand("`true` skips the instance metadata service"),
    Variable::refused(
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "web identity and roles come from a profile in the operator's `config_file`",
    )
    .by_hand("with `AWS_ROLE_ARN`: web identity, as for the AWS CLI"),
    Variable::refused(
        "AWS_ROLE_ARN",
        "web identity and roles come from a profile in the operator's `config_file`; a job \
         assumes a role the operator allows with `?role=`",
    )
    .by_hand("with `AWS_WEB_IDENTITY_TOKEN_FILE`: web identity, as for the AWS CLI"),
    Variable::refused(
        "AWS_ROLE_SESSION_NAME",
        "the session is named after the job (`nomad.<namespace>.<job>`)",
    )
    .by_hand("the web identity session's name"),
    Variable::refused(
        "AWS_CA_BUNDLE",
        "the plugin trusts the node's CA store and the operator's `ca_file`",
    )
    .by_hand("`ca_file`, as for the AWS CLI"),
    Variable::refused(
        "SSL_CERT_FILE",
        "the plugin trusts the node's CA store (/etc/ssl/certs), which the operator manages",
    )
    .by_hand("not read: use `AWS_CA_BUNDLE`"),
    Variable::refused(
        "SSL_CERT_DIR",
        "the plugin trusts the node's CA store (/etc/ssl/certs), which the operator manages",
    )
    .by_hand("not read: use `AWS_CA_BUNDLE`"),
    Variable::refused(
        "AWS_*",
        "only the operator configures this, in the settings file",
    )
    .by_hand("not read"),
];
