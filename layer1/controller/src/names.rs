//! Generated app names: `adjective-noun-number`, easy to read aloud and to type.

const ADJECTIVES: &[&str] = &[
    "amber", "brave", "calm", "crisp", "dusty", "eager", "fuzzy", "gentle", "hollow", "icy",
    "jolly", "keen", "lively", "mellow", "nimble", "olive", "plain", "quiet", "rapid", "sunny",
    "tidy", "upbeat", "vivid", "windy", "young", "zesty", "bold", "coral", "dapper", "early",
];

const NOUNS: &[&str] = &[
    "anchor", "badger", "canyon", "delta", "ember", "falcon", "glacier", "harbor", "island",
    "jungle", "kettle", "lagoon", "meadow", "nebula", "orchard", "pebble", "quarry", "river",
    "summit", "tundra", "valley", "willow", "yonder", "zephyr", "beacon", "cedar", "dune",
    "forest", "grove", "heron",
];

/// A random name such as `brave-harbor-4821`.
pub fn generate() -> String {
    let r = uuid::Uuid::new_v4();
    let b = r.as_bytes();
    let adjective = ADJECTIVES[b[0] as usize % ADJECTIVES.len()];
    let noun = NOUNS[b[1] as usize % NOUNS.len()];
    let number = u16::from_be_bytes([b[2], b[3]]) % 9000 + 1000;
    format!("{adjective}-{noun}-{number}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn generated_names_are_valid_app_names() {
        for _ in 0..200 {
            let n = super::generate();
            assert!(controller_api::valid_app_name(&n), "{n}");
        }
    }
}
