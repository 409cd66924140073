//! Process types: the app's `Procfile` (`type: command` lines) over the buildpack's
//! `bin/release` defaults (YAML `default_process_types`).

use std::collections::BTreeMap;

use yaml_rust2::{Yaml, YamlLoader};

use crate::error::BuildError;

/// Process type names to commands.
pub type ProcessTypes = BTreeMap<String, String>;

/// Parses a Procfile: `name: command` per line, `#` comments and blank lines skipped.
pub fn parse_procfile(text: &str) -> Result<ProcessTypes, BuildError> {
    let mut out = ProcessTypes::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| BuildError::Malformed {
            what: format!("Procfile line {}", n + 1),
            reason: reason.into(),
        };
        let (name, command) = line
            .split_once(':')
            .ok_or_else(|| bad("expected `type: command`"))?;
        let name = name.trim();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("a process type has letters, digits, - and _ only"));
        }
        let command = command.trim();
        if command.is_empty() {
            return Err(bad("the command is empty"));
        }
        out.insert(name.to_string(), command.to_string());
    }
    Ok(out)
}

/// The `default_process_types` of a buildpack's `bin/release` output.
pub fn parse_release(text: &str) -> Result<ProcessTypes, BuildError> {
    let bad = |reason: String| BuildError::Malformed {
        what: "the buildpack's bin/release output".into(),
        reason,
    };
    if text.trim().is_empty() {
        return Ok(ProcessTypes::new());
    }
    let docs = YamlLoader::load_from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut out = ProcessTypes::new();
    let Some(doc) = docs.first() else {
        return Ok(out);
    };
    match &doc["default_process_types"] {
        Yaml::Hash(h) => {
            for (k, v) in h {
                match (k.as_str(), v.as_str()) {
                    (Some(k), Some(v)) => {
                        out.insert(k.to_string(), v.to_string());
                    }
                    _ => return Err(bad("default_process_types maps names to commands".into())),
                }
            }
        }
        Yaml::BadValue | Yaml::Null => {}
        _ => return Err(bad("default_process_types is not a mapping".into())),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn procfiles_and_release_output_parse() {
        let p =
            parse_procfile("# app\nweb: python3 app.py --port $PORT\n\nworker:  ./work\n").unwrap();
        assert_eq!(p["web"], "python3 app.py --port $PORT");
        assert_eq!(p["worker"], "./work");
        assert!(parse_procfile("web python3 app.py").is_err());
        assert!(parse_procfile("we b: x").is_err());
        let r = parse_release(
            "---\naddons: []\ndefault_process_types:\n  web: python3 -m http.server $PORT\n",
        )
        .unwrap();
        assert_eq!(r["web"], "python3 -m http.server $PORT");
        assert!(parse_release("").unwrap().is_empty());
        assert!(parse_release("default_process_types: [1]").is_err());
    }
}
