//! The `breakglass` binary: parse, prompt, print. All domain work is in the library.
#![forbid(unsafe_code)]

mod cli;

fn main() {
    std::process::exit(cli::run());
}
