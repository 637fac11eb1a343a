"""Settings for every host (Ansible: group_vars/all). Each key is documented, with its
default, beside the step that uses it (airnode/steps/<step>.py, DEFAULTS) and in docs/settings.md.
Uncomment to override."""

# zram_fraction = 0.5
# zram_max_mb = 8192
# zram_algorithm = "zstd"

# The offline bundle, and how the deploy knows it is the one you fetched: paste the line
# `airnode bundle fetch` printed on the connected machine (or sign the bundle with
# `airnode bundle sign --key KEY DIR` and name an allowed-signers file instead).
# bundle_dir = "bundle"
# bundle_sha256 = "<64 hex digits printed by airnode bundle fetch>"
# bundle_allowed_signers = "site-allowed-signers"
#   its lines: airnode-bundle namespaces="airnode-bundle" ssh-ed25519 AAAA...
