//! kube-proxy: programs Services into the node's packet filter (nftables)
