//! The Dockerfile parser, the render/parse round trip, variable expansion and the
//! `.dockerignore` matcher: nothing may panic or hang, and whatever parses must render
//! to text that parses back to the same model.

use std::collections::BTreeMap;

use hoist_dockerfile::ignore::Matcher;
use hoist_dockerfile::lex::ShellLex;
use hoist_dockerfile::{
    parse, parse_instruction, GlobalScope, Platforms, StageScope, DEFAULT_PATH_ENV,
};

/// The target body (see the module docs).
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        // Invalid UTF-8 must be a clear error, not a panic.
        let _ = parse(&String::from_utf8_lossy(data), "fuzz");
        return;
    };

    if let Ok(df) = parse(text, "fuzz") {
        let rendered = df.render();
        let again = parse(&rendered, "rendered")
            .unwrap_or_else(|e| panic!("rendered text does not parse: {e}\n{rendered}"));
        assert_eq!(
            again.without_source_info(),
            df.without_source_info(),
            "round trip\n{rendered}"
        );

        // Expansion and scoping must not panic either.
        let args = BTreeMap::from([("A".to_string(), "x y".to_string())]);
        if let Ok(global) = GlobalScope::new(&df, &args, &Platforms::host()) {
            for st in &df.stages {
                let _ = global.expand_from(st);
                let mut scope = StageScope::new(&global, &[DEFAULT_PATH_ENV.to_string()]);
                for i in &st.instructions {
                    if scope.apply(i).is_err() {
                        break;
                    }
                }
                let _ = scope.run_env();
            }
        }
    }
    let _ = parse_instruction(text);
    let _ = hoist_dockerfile::check(text, "fuzz");

    let env = vec![
        "A=abc".to_string(),
        "B=".to_string(),
        "P=/usr/local/bin".to_string(),
    ];
    let _ = ShellLex::new('\\').process_words(text, &env);
    let _ = ShellLex::new('`').process_word(text, &env);

    if let Ok(m) = Matcher::from_ignore_file(text) {
        for p in ["a", "a/b/c", "node_modules/x", ".git", "src/main.rs"] {
            let _ = m.matches(p);
            let _ = m.may_reinclude_children(p);
        }
    }
}
