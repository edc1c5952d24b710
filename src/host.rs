//! What the passes may ask of the machine xenify runs on, answered from the
//! machine itself: the IPv4 address of a bridge (for console listen
//! addresses). The library only sees the `Host` trait; tests give a table.
//!
//! The interface table is read once per process, on the first question: a
//! hook converts one document, and `xenify check` over a thousand domains
//! would otherwise open a netlink socket for each one with a console
//! (docs/performance.md). Addresses do not change within one run.

use std::ffi::CStr;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use xenify::Host;

/// The running machine.
pub struct System;

impl Host for System {
    fn bridge_ipv4(&self, name: &str) -> Option<Ipv4Addr> {
        static TABLE: OnceLock<Vec<(String, Ipv4Addr)>> = OnceLock::new();
        let table = TABLE.get_or_init(interfaces_ipv4);
        table.iter().find(|(n, _)| n == name).map(|(_, ip)| *ip)
    }
}

/// Each network interface with its first IPv4 address, from getifaddrs(3):
/// no subprocess, nothing that can block.
fn interfaces_ipv4() -> Vec<(String, Ipv4Addr)> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we walk
    // read-only and free exactly once with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Vec::new();
    }
    let mut found: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifname = unsafe { CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: ifa_addr points at a sockaddr whose family says its type.
        let family = unsafe { (*ifa.ifa_addr).sa_family };
        let name = ifname.to_string_lossy();
        if i32::from(family) == libc::AF_INET && !found.iter().any(|(n, _)| *n == name) {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            found.push((name.into_owned(), Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_its_address_and_unknown_interfaces_none() {
        assert_eq!(System.bridge_ipv4("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(System.bridge_ipv4("no-such-bridge0"), None);
    }
}
