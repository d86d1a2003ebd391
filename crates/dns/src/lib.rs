//! cluster-dns: the cluster DNS server for Services and pods
