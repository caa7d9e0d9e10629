//! The committed completions and man pages are what the binary renders
//! from its clap definition: a flag change must regenerate them
//! (`gitbak generate .`).

use std::path::Path;

use crate::support::{files_under, TestEnv};

#[test]
fn completions_and_man_pages_match_the_cli() {
    let env = TestEnv::new();
    let out = env.root().join("generated");
    env.gitbak(["generate".as_ref(), out.as_os_str()])
        .run()
        .assert_success();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in ["completions", "man"] {
        let generated = files_under(&out.join(dir));
        assert_eq!(
            generated,
            files_under(&root.join(dir)),
            "{dir}/ lists other files; run `gitbak generate .`"
        );
        for file in generated {
            let want = std::fs::read(out.join(dir).join(&file)).unwrap();
            let have = std::fs::read(root.join(dir).join(&file)).unwrap();
            assert!(
                want == have,
                "{dir}/{file} is stale; run `gitbak generate .` and commit the result"
            );
        }
    }
}
