//! kiln-cli: placeholder until issue 8 builds the redis-cli compatible client.
fn main() {
    eprintln!("kiln-cli is not built yet; use redis-cli");
    std::process::exit(1);
}
