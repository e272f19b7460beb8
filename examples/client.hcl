# Nomad client configuration: plugins live in <common_plugin_dir>/secrets/<provider>.
# Install with: cargo xtask install --plugin-dir /opt/nomad/plugins
client {
  enabled           = true
  common_plugin_dir = "/opt/nomad/plugins"
}
