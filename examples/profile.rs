//! Runs the pipeline over a domain many times, for a profiler:
//! `cargo build --profile profiling --example profile && valgrind --tool=callgrind target/profiling/examples/profile fixtures/domains/testComplexVm.xml`.

fn main() {
    let path = std::env::args().nth(1).expect("a domain file");
    let text = std::fs::read_to_string(path).unwrap();
    let policy = xenify::Policy::accepting_all();
    let mut total = 0;
    for _ in 0..200 {
        let c = xenify::convert_all(&text, &policy).unwrap();
        let mut out = Vec::new();
        c.write_output(&mut out).unwrap();
        total += out.len();
    }
    println!("{total}");
}
