//! Rewriting a native policy file in place: the parsed policy beside its `toml_edit`
//! document, so that a change keeps what a person wrote.

use super::read::invalid;
use super::{parse_native, rule_to_native, Arch, Location, ModelError, Policy, Rule};

/// A native policy together with its document, so that auditor can change it without losing
/// what a person wrote: comments, blank lines, the order and spelling of keys.
#[derive(Debug, Clone)]
pub struct NativeDocument {
    doc: toml_edit::DocumentMut,
    policy: Policy,
}

impl NativeDocument {
    /// Parse (strictly, like [`parse_native`]) and keep the document for rewriting.
    pub fn parse(text: &str) -> Result<Self, ModelError> {
        let policy = parse_native(text)?;
        let doc = toml_edit::Document::parse(text.to_owned())
            .map_err(|e| ModelError::Syntax {
                location: Location::of_span(text, e.span()),
                message: e.message().to_owned(),
            })?
            .into_mut();
        Ok(NativeDocument { doc, policy })
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Append a rule at the end; everything already in the document stays as written.
    pub fn push_rule(&mut self, rule: &Rule) -> Result<(), ModelError> {
        let snippet = rule_to_native(rule);
        let parsed: toml_edit::DocumentMut =
            snippet
                .parse()
                .map_err(|e: toml_edit::TomlError| ModelError::Syntax {
                    location: Location::default(),
                    message: format!("internal: rendered rule does not parse: {}", e.message()),
                })?;
        let mut table = parsed
            .get("rule")
            .and_then(|i| i.as_array_of_tables())
            .and_then(|a| a.get(0))
            .cloned()
            .ok_or_else(|| ModelError::Syntax {
                location: Location::default(),
                message: "internal: rendered rule has no [[rule]] table".to_owned(),
            })?;
        // A blank line before each new section, like the rest of a generated file; the table's
        // position is assigned when it is inserted.
        table.decor_mut().set_prefix("\n");
        table.set_position(None);
        let root = self.doc.as_table_mut();
        match root.get_mut("rule") {
            Some(toml_edit::Item::ArrayOfTables(a)) => a.push(table),
            Some(_) => {
                return Err(invalid(
                    Location::default(),
                    "`rule` is not an array of tables",
                    "",
                ));
            }
            None => {
                let mut a = toml_edit::ArrayOfTables::new();
                a.push(table);
                root.insert("rule", toml_edit::Item::ArrayOfTables(a));
            }
        }
        let mut r = rule.clone();
        r.origin = None;
        self.policy.rules.push(r);
        Ok(())
    }

    /// Add architectures the policy does not list yet, at the end of its list.
    pub fn add_architectures(&mut self, arches: &[Arch]) {
        let new: Vec<Arch> = arches
            .iter()
            .copied()
            .filter(|a| !self.policy.architectures.contains(a))
            .collect();
        if new.is_empty() || self.policy.architectures.is_empty() {
            // An empty list means "native only"; adding to it would narrow what the policy
            // covers, so leave it.
            return;
        }
        if let Some(arr) = self
            .doc
            .get_mut("architectures")
            .and_then(|i| i.as_array_mut())
        {
            for a in &new {
                arr.push(a.as_str());
            }
            self.policy.architectures.extend(new);
        }
    }

    /// The document's text.
    pub fn render(&self) -> String {
        self.doc.to_string()
    }
}
