//! The load balancer IP pool: IPv4 ranges, one address per Service (by
//! UID), stable across restarts by re-reserving what Services already hold.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use anyhow::{anyhow, bail, Result};
use ipnet::Ipv4Net;

/// Inclusive IPv4 ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRanges {
    ranges: Vec<(u32, u32)>,
}

impl IpRanges {
    /// Parses "a.b.c.d-e.f.g.h", "a.b.c.d/n" or a single address, comma-separated.
    /// A CIDR of /30 or wider leaves out its network and broadcast addresses.
    pub fn parse(s: &str) -> Result<IpRanges> {
        let mut ranges = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some((a, b)) = part.split_once('-') {
                let a: Ipv4Addr = a
                    .trim()
                    .parse()
                    .map_err(|e| anyhow!("invalid range {part:?}: {e}"))?;
                let b: Ipv4Addr = b
                    .trim()
                    .parse()
                    .map_err(|e| anyhow!("invalid range {part:?}: {e}"))?;
                if u32::from(a) > u32::from(b) {
                    bail!("invalid range {part:?}: start after end");
                }
                ranges.push((u32::from(a), u32::from(b)));
            } else if part.contains('/') {
                let n: Ipv4Net = part
                    .parse()
                    .map_err(|e| anyhow!("invalid CIDR {part:?}: {e}"))?;
                let n = n.trunc();
                let (mut a, mut b) = (u32::from(n.network()), u32::from(n.broadcast()));
                if n.prefix_len() <= 30 {
                    a += 1;
                    b -= 1;
                }
                ranges.push((a, b));
            } else {
                let a: Ipv4Addr = part
                    .parse()
                    .map_err(|e| anyhow!("invalid address {part:?}: {e}"))?;
                ranges.push((u32::from(a), u32::from(a)));
            }
        }
        if ranges.is_empty() {
            bail!("empty pool");
        }
        Ok(IpRanges { ranges })
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        self.ranges.iter().any(|(a, b)| *a <= v && v <= *b)
    }

    /// The number of addresses.
    pub fn size(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| (*b - *a) as u64 + 1).sum()
    }

    fn iter(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.ranges
            .iter()
            .flat_map(|(a, b)| (*a..=*b).map(Ipv4Addr::from))
    }
}

/// Allocations from the pool, by owner (the Service UID).
#[derive(Debug, Clone)]
pub struct IpPool {
    ranges: IpRanges,
    by_owner: HashMap<String, Ipv4Addr>,
    owners: BTreeMap<Ipv4Addr, String>,
}

impl IpPool {
    pub fn new(ranges: IpRanges) -> IpPool {
        IpPool {
            ranges,
            by_owner: HashMap::new(),
            owners: BTreeMap::new(),
        }
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.ranges.contains(ip)
    }

    /// The address `owner` holds.
    pub fn get(&self, owner: &str) -> Option<Ipv4Addr> {
        self.by_owner.get(owner).copied()
    }

    /// Who holds `ip`.
    pub fn owner_of(&self, ip: Ipv4Addr) -> Option<&str> {
        self.owners.get(&ip).map(String::as_str)
    }

    /// Every allocation.
    pub fn allocated(&self) -> impl Iterator<Item = (&Ipv4Addr, &String)> {
        self.owners.iter()
    }

    /// Records that `owner` holds `ip` (restoring state); false when `ip` is
    /// outside the pool, taken by someone else, or `owner` already holds
    /// another address.
    pub fn reserve(&mut self, owner: &str, ip: Ipv4Addr) -> bool {
        if !self.contains(ip) {
            return false;
        }
        match (self.owners.get(&ip), self.by_owner.get(owner)) {
            (Some(o), _) => o == owner,
            (None, Some(_)) => false,
            (None, None) => {
                self.take(owner, ip);
                true
            }
        }
    }

    fn take(&mut self, owner: &str, ip: Ipv4Addr) {
        self.owners.insert(ip, owner.to_string());
        self.by_owner.insert(owner.to_string(), ip);
    }

    /// The address for `owner`: `requested` (spec.loadBalancerIP) when given
    /// (it must be in the pool and free), else what it holds already, else the
    /// first free one of `hints` (the addresses in its status), else the
    /// lowest free address.
    pub fn assign(
        &mut self,
        owner: &str,
        requested: Option<Ipv4Addr>,
        hints: &[Ipv4Addr],
    ) -> Result<Ipv4Addr> {
        if let Some(req) = requested {
            if !self.contains(req) {
                bail!("requested load balancer IP {req} is not in the pool");
            }
            if let Some(o) = self.owners.get(&req) {
                if o != owner {
                    bail!("requested load balancer IP {req} is already allocated");
                }
                return Ok(req);
            }
            self.release(owner);
            self.take(owner, req);
            return Ok(req);
        }
        if let Some(ip) = self.get(owner) {
            return Ok(ip);
        }
        for h in hints {
            if self.contains(*h) && !self.owners.contains_key(h) {
                self.take(owner, *h);
                return Ok(*h);
            }
        }
        let free = self.ranges.iter().find(|ip| !self.owners.contains_key(ip));
        match free {
            Some(ip) => {
                self.take(owner, ip);
                Ok(ip)
            }
            None => bail!("no free load balancer IP left in the pool"),
        }
    }

    /// Frees what `owner` holds.
    pub fn release(&mut self, owner: &str) -> Option<Ipv4Addr> {
        let ip = self.by_owner.remove(owner)?;
        self.owners.remove(&ip);
        Some(ip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges() {
        let r = IpRanges::parse("10.0.0.10-10.0.0.12, 10.0.1.0/30,10.0.2.7").unwrap();
        assert_eq!(r.size(), 3 + 2 + 1);
        assert!(r.contains(ip("10.0.0.11")));
        assert!(!r.contains(ip("10.0.1.0")));
        assert!(r.contains(ip("10.0.1.2")));
        assert!(!r.contains(ip("10.0.1.3")));
        assert!(IpRanges::parse("10.0.0.5-10.0.0.1").is_err());
        assert!(IpRanges::parse("").is_err());
        assert!(IpRanges::parse("nope").is_err());
        assert_eq!(IpRanges::parse("10.0.0.8/32").unwrap().size(), 1);
    }

    #[test]
    fn allocation_is_stable_and_exclusive() {
        let mut p = IpPool::new(IpRanges::parse("10.0.0.10-10.0.0.12").unwrap());
        // Restored from an existing Service's status.
        assert!(p.reserve("b", ip("10.0.0.11")));
        assert!(!p.reserve("c", ip("10.0.0.11")));
        assert!(!p.reserve("c", ip("10.0.0.99")));
        assert_eq!(p.assign("a", None, &[]).unwrap(), ip("10.0.0.10"));
        assert_eq!(p.assign("a", None, &[]).unwrap(), ip("10.0.0.10"));
        assert_eq!(p.assign("b", None, &[]).unwrap(), ip("10.0.0.11"));
        // A hint that is taken is skipped.
        assert_eq!(
            p.assign("c", None, &[ip("10.0.0.10")]).unwrap(),
            ip("10.0.0.12")
        );
        assert!(p.assign("d", None, &[]).is_err());
        assert_eq!(p.release("a"), Some(ip("10.0.0.10")));
        assert_eq!(p.release("a"), None);
        assert_eq!(p.assign("d", None, &[]).unwrap(), ip("10.0.0.10"));
        assert_eq!(p.owner_of(ip("10.0.0.10")), Some("d"));
    }

    #[test]
    fn requested_ip() {
        let mut p = IpPool::new(IpRanges::parse("10.0.0.0/29").unwrap());
        assert_eq!(p.assign("a", None, &[]).unwrap(), ip("10.0.0.1"));
        // Moving to a requested address frees the old one.
        assert_eq!(
            p.assign("a", Some(ip("10.0.0.5")), &[]).unwrap(),
            ip("10.0.0.5")
        );
        assert_eq!(p.owner_of(ip("10.0.0.1")), None);
        assert!(p.assign("b", Some(ip("10.0.0.5")), &[]).is_err());
        assert!(p.assign("b", Some(ip("192.168.0.1")), &[]).is_err());
        assert_eq!(
            p.assign("b", None, &[ip("10.0.0.3")]).unwrap(),
            ip("10.0.0.3")
        );
    }
}
