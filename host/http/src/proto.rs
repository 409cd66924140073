//! The transport protocol of a port or address: `tcp` or `udp`.

crate::wire_enum! {
    /// A transport protocol (a name a newer peer adds reads as `Unknown` in answers).
    #[derive(Default, Hash, PartialOrd, Ord)]
    pub enum Proto("protocol") {
        /// TCP (the default).
        #[default]
        Tcp = "tcp",
        /// UDP.
        Udp = "udp",
    }
}

#[cfg(test)]
mod tests {
    use super::Proto;

    #[test]
    fn a_protocol_a_newer_peer_adds_is_read_only_from_answers() {
        assert_eq!("udp".parse::<Proto>().unwrap(), Proto::Udp);
        assert_eq!(
            "sctp".parse::<Proto>().unwrap_err(),
            "unknown protocol \"sctp\": use tcp or udp"
        );
        assert!(serde_json::from_str::<Proto>("\"sctp\"").is_err());
        let p: Proto = crate::json::from_str("\"sctp\"").unwrap();
        assert_eq!(p, Proto::Unknown);
        assert_eq!(Proto::default(), Proto::Tcp);
    }
}
