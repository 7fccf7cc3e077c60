//! goosectl: status, membership and partition drills for goosed.

fn main() {
    eprintln!("goosectl: not built yet");
    std::process::exit(2);
}
