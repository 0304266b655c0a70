//! Tests of the native format: reading, located errors, writing back, in-place editing.

use super::*;

const SAMPLE: &str = r#"# A reviewed policy.
version = 1
default_action = "errno"
default_errno = "EPERM"   # the safe answer
architectures = ["x86_64"]

# The basics.
[[rule]]
names = ["read", "write"]
action = "allow"

[[rule]]
name = "socket"
action = "allow"
args = [{ index = 0, op = "==", value = 1 }]
comment = "AF_UNIX only"

[[rule]]
name = "mknodat"
action = "notify"
handler = "emulate-mknod"
params = { devices = ["c 1:3"] }
args = [{ index = 2, op = "masked-equal", mask = 0o170000, value = 0o020000 }]
provenance = { inputs = 1, of = 2, calls = 3, executables = ["/bin/mknod"] }
"#;

#[test]
fn parses_a_policy() -> Result<(), ModelError> {
    let p = parse_native(SAMPLE)?;
    assert_eq!(p.default_action, Action::Errno(EPERM));
    assert_eq!(p.architectures, vec![Arch::X86_64]);
    assert_eq!(p.rules.len(), 3);
    assert_eq!(
        p.rules[1].args,
        vec![Condition {
            index: 0,
            op: Op::Eq,
            value: 1
        }]
    );
    assert_eq!(p.rules[1].comment.as_deref(), Some("AF_UNIX only"));
    let Action::Notify(n) = &p.rules[2].action else {
        panic!("not notify")
    };
    assert_eq!(n.handler.as_deref(), Some("emulate-mknod"));
    assert_eq!(
        n.params.get("devices"),
        Some(&ParamValue::strings(["c 1:3"]))
    );
    assert_eq!(p.rules[2].args[0].op, Op::MaskedEq { mask: 0o170000 });
    assert_eq!(p.rules[2].provenance.as_ref().map(|p| p.calls), Some(3));
    assert_eq!(
        p.rules[0].name_location(1),
        Some(Location {
            line: 9,
            column: 18
        })
    );
    Ok(())
}

#[test]
fn render_then_parse_is_identity() -> Result<(), ModelError> {
    let p = parse_native(SAMPLE)?;
    let again = parse_native(&to_native(&p))?;
    assert_eq!(p.rules.len(), again.rules.len());
    for (a, b) in p.rules.iter().zip(&again.rules) {
        assert!(a.same_effect(b), "{a:?} != {b:?}");
        assert_eq!(a.comment, b.comment);
        assert_eq!(a.provenance, b.provenance);
    }
    assert_eq!(p.default_action, again.default_action);
    Ok(())
}

fn err(text: &str) -> String {
    match parse_native(text) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_fields_are_located_errors() {
    let e = err(
        "version = 1\ndefault_action = \"allow\"\n[[rule]]\nname = \"read\"\nacton = \"allow\"\n",
    );
    assert!(e.starts_with("5:1: unknown field `acton` in a rule"), "{e}");
    assert!(e.contains("did you mean `action`?"), "{e}");
}

/// Every table with fixed keys names itself and its keys when one is unknown: the lists the
/// errors quote are the ones serde checks against.
#[test]
fn each_table_reports_its_own_unknown_keys() {
    const HEAD: &str = "version = 1\ndefault_action = \"allow\"\n";
    let cases = [
        (format!("{HEAD}flgas = []\n"), "3:1: unknown field `flgas` in the policy", "flags"),
        (
            format!("{HEAD}[[rule]]\nname = \"read\"\ncoment = \"x\"\naction = \"allow\"\n"),
            "5:1: unknown field `coment` in a rule",
            "comment",
        ),
        (
            format!("{HEAD}[[rule]]\nname = \"read\"\naction = \"allow\"\nargs = [{{ index = 0, op = \"==\", valeu = 1 }}]\n"),
            "6:33: unknown field `valeu` in an argument condition",
            "value",
        ),
        (
            format!("{HEAD}[[rule]]\nname = \"read\"\naction = \"allow\"\nprovenance = {{ input = 1 }}\n"),
            "6:16: unknown field `input` in provenance",
            "inputs",
        ),
    ];
    for (text, start, fix) in cases {
        let e = err(&text);
        assert!(e.starts_with(start), "{e}");
        assert!(e.contains(&format!("did you mean `{fix}`?")), "{e}");
    }
}

#[test]
fn wrong_shapes_are_located_errors() {
    const HEAD: &str = "version = 1\ndefault_action = \"allow\"\n";
    let e = err(&format!("{HEAD}rule = 3\n"));
    assert!(
        e.starts_with("3:8: `rule` must be an array of tables"),
        "{e}"
    );
    let e = err(&format!("{HEAD}[rule]\nname = \"read\"\n"));
    assert!(e.contains("`rule` must be an array of tables"), "{e}");
    let e = err(&format!(
        "{HEAD}[[rule]]\nname = \"read\"\naction = \"allow\"\nargs = [3]\n"
    ));
    assert!(
        e.starts_with("6:9: an argument condition must be an inline table"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}[[rule]]\nname = \"read\"\naction = \"allow\"\nargs = 3\n"
    ));
    assert!(
        e.starts_with("6:8: `args` must be an array of inline tables"),
        "{e}"
    );
    let e = err(&format!(
        "{HEAD}[[rule]]\nname = \"read\"\naction = \"allow\"\nprovenance = 1\n"
    ));
    assert!(e.starts_with("6:14: `provenance` must be a table"), "{e}");
    let e = err(&format!(
        "{HEAD}[[rule]]\nname = \"mknod\"\naction = \"notify\"\nparams = {{ devices = 1.5 }}\n"
    ));
    assert!(e.contains("handler parameters are strings"), "{e}");
}

/// Conditions may also be written as `[[rule.args]]` sections: the same tables, another syntax.
#[test]
fn conditions_may_be_sections() -> Result<(), ModelError> {
    let p = parse_native(
        "version = 1\ndefault_action = \"allow\"\n[[rule]]\nname = \"socket\"\naction = \"allow\"\n[[rule.args]]\nindex = 0\nop = \"==\"\nvalue = 1\n",
    )?;
    assert_eq!(
        p.rules[0].args,
        vec![Condition {
            index: 0,
            op: Op::Eq,
            value: 1
        }]
    );
    Ok(())
}

#[test]
fn duplicate_keys_are_errors() {
    let e = err("version = 1\ndefault_action = \"allow\"\ndefault_action = \"log\"\n");
    assert!(e.starts_with("3:"), "{e}");
    assert!(e.to_lowercase().contains("duplicate"), "{e}");
}

#[test]
fn bad_values_are_located_errors() {
    let e = err("version = 1\ndefault_action = \"errno\"\ndefault_errno = \"EPREM\"\n");
    assert!(e.starts_with("3:17: unknown errno name \"EPREM\""), "{e}");
    let e = err("version = 2\ndefault_action = \"allow\"\n");
    assert!(e.starts_with("1:11: policy version 2"), "{e}");
    let e = err("version = 1\ndefault_action = \"alow\"\n");
    assert!(e.contains("did you mean \"allow\""), "{e}");
    let e = err("version = 1\ndefault_action = \"allow\"\n[[rule]]\nname = \"x\"\naction = \"allow\"\nargs = [{ index = 6, op = \"==\", value = 1 }]\n");
    assert!(e.contains("argument index 6 out of range"), "{e}");
    let e =
        err("version = 1\ndefault_action = \"allow\"\n[[rule]]\nname = 3\naction = \"allow\"\n");
    assert!(e.starts_with("4:8: `name` must be a string"), "{e}");
    let e = err("");
    assert!(e.contains("missing `version`"), "{e}");
}

#[test]
fn push_rule_keeps_the_text_before_it() -> Result<(), ModelError> {
    let mut d = NativeDocument::parse(SAMPLE)?;
    d.push_rule(&Rule::new(["getpid"], Action::Allow).with_comment("new"))?;
    let out = d.render();
    assert!(out.starts_with(SAMPLE), "{out}");
    let p = parse_native(&out)?;
    assert_eq!(p.rules.len(), 4);
    Ok(())
}

#[test]
fn table_params_round_trip() {
    let text = r#"version = 1
default_action = "allow"

[[rule]]
names = ["mount"]
action = "notify"
handler = "emulate-mount"
params = { fuse = { ext4 = "fuse2fs", "odd type" = "x" } }
"#;
    let p = parse_native(text).expect("reads");
    let written = to_native(&p);
    assert!(
        written.contains(r#"fuse = { ext4 = "fuse2fs", "odd type" = "x" }"#),
        "{written}"
    );
    let back = parse_native(&written).expect("reads back");
    assert_eq!(back.rules[0].action, p.rules[0].action);
}
