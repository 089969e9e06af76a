//! `hoopai-fake`: the crate's fake HighLevel server as one command, for
//! testing apps in any language. See docs/fake-server.md.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    hoopai_fake::main()
}
