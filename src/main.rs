//! Placeholder entry point of the operator; the controller arrives with the operator-core issue.
fn main() {
    println!("tandem-operator: not yet implemented");
}
