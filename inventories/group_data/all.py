"""Settings for every host (Ansible: group_vars/all). Each key is documented, with its
default, beside the step that uses it (airnode/steps/<step>.py, DEFAULTS) and in the README.
Uncomment to override."""

# zram_fraction = 0.5
# zram_max_mb = 8192
# zram_algorithm = "zstd"
