//! Compile a schematron to XSLT on stdout: `cargo run -p relais-schematron --example sch2xslt -- FILE.sch [PHASE]`.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: sch2xslt FILE.sch [PHASE]");
        std::process::exit(2);
    };
    let phase = args.next();
    match relais_schematron::compile(std::path::Path::new(&path), phase.as_deref()) {
        Ok(xslt) => print!("{xslt}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
