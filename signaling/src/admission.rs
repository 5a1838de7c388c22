//! Counting open connections, in all and per address, and refusing those over a cap.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

/// Open connections of one kind (WebSockets, or connections not upgraded yet) and their caps.
pub(crate) struct Admission {
    max: usize,
    max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only addresses with open connections: no zero counts.
    per_address: HashMap<Address, usize>,
}

/// Why a connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// The total cap is reached.
    Total,
    /// The cap for its address is reached.
    PerAddress,
}

/// One admitted connection, counted until this is dropped.
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    address: Option<Address>,
}

impl Admission {
    /// At most `max` connections, and `max_per_address` from one address.
    pub(crate) fn new(max: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            max_per_address,
            open: Mutex::default(),
        })
    }

    /// Counts a connection from `ip` (only in the total if unknown), or says why not.
    pub(crate) fn admit(self: &Arc<Self>, ip: Option<IpAddr>) -> Result<Admitted, Refused> {
        let address = ip.map(Address::of);
        let mut open = self.lock();
        if let Some(address) = address {
            let from = open.per_address.get(&address).copied().unwrap_or(0);
            if from >= self.max_per_address {
                return Err(Refused::PerAddress);
            }
            if open.total >= self.max {
                return Err(Refused::Total);
            }
            open.per_address.insert(address, from + 1);
        } else if open.total >= self.max {
            return Err(Refused::Total);
        }
        open.total += 1;
        Ok(Admitted {
            admission: self.clone(),
            address,
        })
    }

    /// Open connections, and addresses they come from.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let open = self.lock();
        (open.total, open.per_address.len())
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        // Every change is one step under the lock: consistent across a panic elsewhere.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.admission.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(address) = self.address
            && let Some(from) = open.per_address.get_mut(&address)
        {
            *from = from.saturating_sub(1);
            if *from == 0 {
                open.per_address.remove(&address);
            }
        }
    }
}

/// What one client is taken to be: an IPv4 address, or an IPv6 /64 (one host can have a
/// whole /64); an IPv4-mapped IPv6 address counts as the IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Address {
    V4([u8; 4]),
    V6Prefix([u8; 8]),
}

impl Address {
    fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::V4(v4.octets()),
                None => Self::V6Prefix(prefix_64(v6)),
            },
        }
    }
}

fn prefix_64(v6: Ipv6Addr) -> [u8; 8] {
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&v6.octets()[..8]);
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    #[test]
    fn an_ipv6_64_is_one_address_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            Address::of(ip("2001:db8:1:2::1")),
            Address::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Address::of(ip("2001:db8:1:2::1")),
            Address::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Address::of(ip("192.0.2.7")),
            Address::of(ip("::ffff:192.0.2.7"))
        );
        assert_ne!(Address::of(ip("192.0.2.7")), Address::of(ip("192.0.2.8")));
    }

    #[test]
    fn caps_hold_and_drops_give_places_back() {
        let admission = Admission::new(3, 2);
        let a = Some(ip("192.0.2.1"));
        let b = Some(ip("2001:db8::1"));
        let a1 = admission.admit(a).expect("under both caps");
        let a2 = admission.admit(a).expect("under both caps");
        assert_eq!(admission.admit(a).err(), Some(Refused::PerAddress));
        let unknown = admission
            .admit(None)
            .expect("an unknown address counts in the total");
        assert_eq!(admission.admit(b).err(), Some(Refused::Total));
        assert_eq!(admission.admit(None).err(), Some(Refused::Total));
        assert_eq!(admission.counts(), (3, 1));
        drop(a1);
        let b1 = admission.admit(b).expect("a place was given back");
        drop((a2, unknown, b1));
        assert_eq!(admission.counts(), (0, 0), "nothing is remembered");
    }
}
