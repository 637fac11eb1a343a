"""The offline bundle: spec, image list, manifest (pure) and fetch (requests, skopeo)."""
