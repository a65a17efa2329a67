//! The `breakglass` binary: parse, prompt, print. All domain work is in the library.
#![forbid(unsafe_code)]

mod cli;

fn main() {
    // Before anything else: no core dump, no ptrace by peers, memory locked
    // where the OS allows (see src/hygiene.rs).
    let hygiene = breakglass::hygiene::protect_process();
    std::process::exit(cli::run(&hygiene));
}
