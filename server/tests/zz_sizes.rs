#[test]
fn sizes() {
    use std::mem::size_of;
    eprintln!("Value {}", size_of::<tandem_server::types::Value>());
    eprintln!("Entry {}", size_of::<tandem_server::db::Entry>());
    eprintln!("Bytes {}", size_of::<bytes::Bytes>());
    eprintln!("ZSet {}", size_of::<tandem_server::types::ZSet>());
    eprintln!("HashMapB {}", size_of::<tandem_server::types::HashMapB>());
    eprintln!("VecDeque {}", size_of::<std::collections::VecDeque<bytes::Bytes>>());
}
