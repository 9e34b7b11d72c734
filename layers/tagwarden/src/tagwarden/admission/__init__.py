"""The admission webhook: an HTTPS server in the cluster over the same core as the functions."""
