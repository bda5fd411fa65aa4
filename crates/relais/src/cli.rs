//! Command-line interface (clap derive).

mod annuaire;
mod daemon;
mod outbound;
mod prune;

use clap::{Args, Parser, Subcommand};
use relais_check::{CheckOptions, Checker, SchematronMode};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code when every input is valid.
const EXIT_VALID: u8 = 0;
/// Exit code when at least one input is invalid.
const EXIT_INVALID: u8 = 1;
/// Exit code for usage errors, unreadable files and unusable configuration.
const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "relais",
    version,
    about = "Relais: MSSanté integration engine for hospitals and labs",
    long_about = "Relais receives health documents over MSSanté (France's secure health mail), \
                  validates them against the CI-SIS rules (IHE XDM, CDA R2, HL7v2) and files \
                  them into the hospital's systems; it also builds and sends documents out.",
    after_help = "Exit status: 0 success / all inputs valid, 1 some input invalid, 2 usage, I/O or configuration error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check files offline: MSSanté mails (.eml), XDM ZIPs, CDA documents, HL7v2 messages.
    ///
    /// The kind of each file is told by its content, not its name. Each document is checked
    /// against the CI-SIS rules: XDM metadata (hash, size, patient, codes), the CDA header
    /// (Structuration minimale, INS traits), the CDA XSD and the ANS schematrons of its model
    /// when a validation pack is available. A directory argument checks every file inside it.
    Check(CheckArgs),
    /// Run the inbound pipeline: poll the sources, validate, match, file.
    ///
    /// Without --config, runs the embedded default: the bundled samples/mail as a read-only
    /// source, the journal and an output folder under ./relais-data, no patient matching.
    /// SIGTERM or Ctrl-C stops taking new mail, finishes the work in hand and exits.
    Run(RunArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The review queue: documents that could not be filed automatically.
    #[command(subcommand)]
    Review(ReviewCommand),
    /// Messages in the journal and their audit trail.
    #[command(subcommand)]
    Messages(MessagesCommand),
    /// Connect to each IMAP source (or the one named) and say, step by step, what works:
    /// TCP, TLS, the server's certificate chain, the client certificate, login, mailbox.
    TestConnection {
        /// Only this source.
        #[arg(long)]
        source: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// The patient index used to match documents (also fed by ADT over MLLP).
    #[command(subcommand)]
    Patients(PatientsCommand),
    /// Letters sent to MSSanté (from the watched folders) and what became of them.
    #[command(subcommand)]
    Outbound(outbound::OutboundCommand),
    /// Accounts of the web console (the `[console] users_file`).
    #[command(subcommand)]
    Users(UsersCommand),
    /// The Annuaire national MSSanté: import its published extraction, search it.
    #[command(subcommand)]
    Annuaire(annuaire::AnnuaireCommand),
    /// Retention: prune finished messages past the `[retention]` periods now, in small
    /// transactions (the daemon does it on its own every `run_every_secs`); --dry-run says what
    /// would go. Prints counts, sizes and dates per class, never patient data.
    Prune(prune::PruneArgs),
}

#[derive(Subcommand, Debug)]
enum PatientsCommand {
    /// Import patients from a CSV file with the header
    /// ipp,ins,ins_oid,birth_family,given_birth_first,birth_given_names,birth_date,sex,birthplace_insee,identity_status
    Import {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Add an account. The password is read from the terminal without echo, or from standard
    /// input when it is piped; at least 12 characters.
    Add {
        name: String,
        /// viewer (read only), operator (acts on messages and reviews) or admin.
        #[arg(long)]
        role: String,
        /// The accounts file; default: `users_file` of the configuration's [console].
        #[arg(long, value_name = "FILE")]
        users_file: Option<PathBuf>,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Args, Debug, Clone)]
struct ConfigArg {
    /// Configuration file (TOML); see config/relais.example.toml.
    #[arg(long, short = 'c', value_name = "FILE", env = "RELAIS_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Drain every source, finish the work in flight, and exit.
    #[arg(long)]
    once: bool,
    /// Seconds between two polls of the sources (daemon mode).
    #[arg(long, default_value_t = 5)]
    interval: u64,
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate a configuration file and say what is wrong.
    Check(ConfigArg),
}

#[derive(Subcommand, Debug)]
enum ReviewCommand {
    /// Open reviews, oldest first.
    List(ConfigArg),
    /// One review, with its message's audit trail.
    Show {
        id: i64,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// File the document of a review to a patient of the index.
    File {
        id: i64,
        /// The patient's IPP.
        #[arg(long)]
        patient: String,
        /// Who decides (recorded in the audit trail).
        #[arg(long, env = "USER", default_value = "operator")]
        user: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Reject the subject of a review.
    Reject {
        id: i64,
        /// Why (recorded; no patient data).
        #[arg(long, default_value = "rejected by a reviewer")]
        note: String,
        #[arg(long, env = "USER", default_value = "operator")]
        user: String,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Subcommand, Debug)]
enum MessagesCommand {
    /// Messages, newest first, with their state.
    List {
        /// Only this state (received, parsed, validated, matched, filed, rejected, awaiting_review).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// One message and its audit trail.
    Show {
        id: i64,
        #[command(flatten)]
        config: ConfigArg,
    },
}

#[derive(Args, Debug)]
struct CheckArgs {
    /// Files or directories to check.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Validation pack directory (ANS material: xsd/, schematrons/, value-sets/).
    /// Default: $RELAIS_PACK_DIR, then ./validation-pack, /var/lib/relais/validation-pack,
    /// ../shared/ans.
    #[arg(long, value_name = "DIR")]
    pack: Option<PathBuf>,
    /// Mappings directory (nos/*.csv, cda-models.toml) overriding the built-in tables.
    #[arg(long, value_name = "DIR")]
    mappings: Option<PathBuf>,
    /// Fail (exit 2) when the schematron checks cannot run (no Java, no Saxon, no pack).
    #[arg(long, conflicts_with = "no_schematron")]
    require_schematron: bool,
    /// Do not run the schematron checks (faster; the report says they were not run).
    #[arg(long)]
    no_schematron: bool,
    /// Directory for compiled schematrons and the worker (default: a per-user cache directory).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

pub fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    match cli.command {
        Command::Check(args) => check(args),
        Command::Config(ConfigCommand::Check(args)) => config_check(&args),
        Command::Users(UsersCommand::Add {
            name,
            role,
            users_file,
            config,
        }) => users_add(&name, &role, users_file, &config),
        other => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(daemon::dispatch(other)),
            Err(e) => {
                eprintln!("relais: cannot start the async runtime: {e}");
                ExitCode::from(EXIT_USAGE)
            }
        },
    }
}

fn config_check(args: &ConfigArg) -> ExitCode {
    let Some(path) = &args.config else {
        eprintln!("relais config check: give --config FILE (or set RELAIS_CONFIG)");
        return ExitCode::from(EXIT_USAGE);
    };
    let console = |c: &relais_engine::config::Config| -> Result<(), String> {
        if let Some(section) = c.console.clone() {
            let console =
                relais_console::ConsoleConfig::from_toml(section).map_err(|e| e.to_string())?;
            let problems = console.problems();
            if !problems.is_empty() {
                return Err(format!("[console] {}", problems.join("; ")));
            }
        }
        Ok(())
    };
    match relais_engine::config::Config::load(path)
        .map_err(|e| e.to_string())
        .and_then(|c| console(&c).map(|()| c))
    {
        Ok(c) => {
            println!(
                "{}: configuration OK: {} source(s), {} sink(s), {} route(s), data in {}",
                path.display(),
                c.sources.len(),
                c.sinks.len(),
                c.routes.len(),
                c.data_dir.display()
            );
            ExitCode::from(EXIT_VALID)
        }
        Err(e) => {
            eprintln!("relais config check: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Shortest console password accepted.
const MIN_PASSWORD_CHARS: usize = 12;

fn users_add(name: &str, role: &str, file: Option<PathBuf>, config: &ConfigArg) -> ExitCode {
    let fail = |msg: String| {
        eprintln!("relais users add: {msg}");
        ExitCode::from(EXIT_USAGE)
    };
    let Some(role) = relais_console::Role::parse(role) else {
        return fail(format!("unknown role {role:?}: viewer, operator or admin"));
    };
    let file = match file {
        Some(f) => f,
        None => {
            let Some(path) = &config.config else {
                return fail(
                    "give --users-file FILE, or --config FILE with a [console] section".into(),
                );
            };
            let section = match relais_engine::config::Config::load(path) {
                Ok(c) => c.console,
                Err(e) => return fail(e.to_string()),
            };
            match section.map(relais_console::ConsoleConfig::from_toml) {
                Some(Ok(c)) => c.users_file,
                Some(Err(e)) => return fail(e.to_string()),
                None => return fail(format!("{} has no [console] section", path.display())),
            }
        }
    };
    use std::io::IsTerminal as _;
    let password = if std::io::stdin().is_terminal() {
        match rpassword::prompt_password(format!("password for {name}: ")) {
            Ok(p) => p,
            Err(e) => return fail(format!("cannot read the password: {e}")),
        }
    } else {
        let mut line = String::new();
        if let Err(e) = std::io::stdin().read_line(&mut line) {
            return fail(format!("cannot read the password from standard input: {e}"));
        }
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return fail(format!(
            "the password must have at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    match relais_console::add_user(&file, name, role, &password) {
        Ok(()) => {
            println!("account {name} added to {}", file.display());
            ExitCode::from(EXIT_VALID)
        }
        Err(e) => fail(e.to_string()),
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RELAIS_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    // Colours only on a terminal: journald and log files get plain text.
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn check(args: CheckArgs) -> ExitCode {
    let options = CheckOptions {
        pack: args.pack,
        mappings: args.mappings,
        schematron: if args.no_schematron {
            SchematronMode::Off
        } else if args.require_schematron {
            SchematronMode::Require
        } else {
            SchematronMode::Auto
        },
        cache_dir: args.cache_dir,
        ..CheckOptions::default()
    };
    let checker = match Checker::new(options) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("relais check: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for note in checker.notes() {
        eprintln!("relais check: note: {note}");
    }
    let files = match relais_check::expand_inputs(&args.files) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("relais check: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut inputs = Vec::with_capacity(files.len());
    for path in &files {
        match checker.check_file(path) {
            Ok(r) => inputs.push(r),
            Err(e) => {
                eprintln!("relais check: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let report = relais_check::Report::new(inputs);
    let mut stdout = std::io::stdout().lock();
    let written = if args.json {
        serde_json::to_writer_pretty(&mut stdout, &report)
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(stdout))
    } else {
        stdout.write_all(report.render_text().as_bytes())
    };
    if let Err(e) = written
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("relais check: cannot write the report: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    ExitCode::from(if report.valid {
        EXIT_VALID
    } else {
        EXIT_INVALID
    })
}
