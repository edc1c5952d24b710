//! In-process cost of xenify on the real domains of fixtures/domains: a
//! bare roxmltree parse of the input (the floor) against the whole pipeline
//! (parse, every pass, write). `make bench` reads the medians criterion
//! records and prints them with their ratio.

use criterion::{criterion_group, criterion_main, Criterion};

fn domains() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/domains");
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    v.sort();
    v
}

fn bench(c: &mut Criterion) {
    let policy = xenify::Policy::accepting_all();
    for (name, text) in domains() {
        let mut g = c.benchmark_group(&name);
        g.bench_function("parse", |b| {
            b.iter(|| roxmltree::Document::parse(std::hint::black_box(&text)).unwrap().root().children().count())
        });
        g.bench_function("pipeline", |b| {
            b.iter(|| {
                let c = xenify::convert_all(std::hint::black_box(&text), &policy).unwrap();
                let mut out = Vec::with_capacity(text.len());
                c.write_output(&mut out).unwrap();
                out.len()
            })
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).warm_up_time(std::time::Duration::from_millis(300)).measurement_time(std::time::Duration::from_secs(1));
    targets = bench
}
criterion_main!(benches);
