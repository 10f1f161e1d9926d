//! `tandem-server [/path/to/redis.conf] [--directive value ...]`

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match tandem_server::config::load_from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{e}");
            std::process::exit(1);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("Failed to start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = rt.block_on(tandem_server::run(config)) {
        tandem_server::warning!("{e}");
        std::process::exit(1);
    }
}
