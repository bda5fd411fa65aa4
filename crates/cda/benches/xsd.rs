//! XSD validation cost per document: LDL-SES_2022.01.xml (about 100 KB) against CDA_extended.xsd.
//! Run with `cargo bench -p relais-cda --bench xsd`.

use criterion::{Criterion, criterion_group, criterion_main};
use relais_cda::XsdValidator;
use std::hint::black_box;

fn bench_xsd(c: &mut Criterion) {
    let validator = XsdValidator::load(relais_testsupport::ans_file("xsd/CDA_extended.xsd"))
        .expect("load the CDA XSD");
    let doc = std::fs::read(relais_testsupport::ans_file(
        "cda-examples/LDL-SES_2022.01.xml",
    ))
    .expect("read LDL-SES");
    let mut group = c.benchmark_group("xsd");
    group.throughput(criterion::Throughput::Bytes(doc.len() as u64));
    group.bench_function("validate LDL-SES_2022.01", |b| {
        b.iter(|| {
            let findings = validator.validate(black_box(&doc));
            assert!(findings.is_empty());
        })
    });
    group.bench_function("read + check_header LDL-SES_2022.01", |b| {
        b.iter(|| {
            let cda =
                relais_cda::read(black_box(&doc), &relais_core::Limits::default()).expect("read");
            black_box(relais_cda::check_header(&cda));
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(3));
    targets = bench_xsd
}
criterion_main!(benches);
