//! goosed: the Duck Duck Goose daemon.

fn main() {
    eprintln!("goosed: not built yet");
    std::process::exit(2);
}
