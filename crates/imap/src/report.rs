//! The step-by-step account of a connection attempt, shown by `relais test-connection`.

use std::fmt;
use std::time::Duration;

/// One phase of connecting to a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// Reading the CA files and the client certificate.
    Configuration,
    /// TCP connection.
    Tcp,
    /// `STARTTLS` command (StartTls mode only).
    StartTls,
    /// TLS handshake (protocol, cipher).
    TlsHandshake,
    /// Verification of the server certificate chain against `ca_pem_files`.
    ServerCertificate,
    /// Whether the server asked for, and got, a client certificate.
    ClientCertificate,
    /// The server's `* OK` greeting.
    Greeting,
    /// Authentication.
    Login,
    /// Server capabilities (IDLE, MOVE, UIDPLUS).
    Capabilities,
    /// Selecting the mailbox.
    Select,
    /// Presence of the processed and quarantine folders.
    Folders,
}

impl StepKind {
    /// A short label.
    pub fn label(self) -> &'static str {
        match self {
            StepKind::Configuration => "Configuration",
            StepKind::Tcp => "TCP",
            StepKind::StartTls => "STARTTLS",
            StepKind::TlsHandshake => "TLS",
            StepKind::ServerCertificate => "Server certificate",
            StepKind::ClientCertificate => "Client certificate",
            StepKind::Greeting => "Greeting",
            StepKind::Login => "Login",
            StepKind::Capabilities => "Capabilities",
            StepKind::Select => "Select",
            StepKind::Folders => "Folders",
        }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// It worked.
    Ok,
    /// It worked, with something worth a look (e.g. no IDLE: polling only).
    Warning,
    /// It failed; later steps were not attempted.
    Failed,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Which phase.
    pub kind: StepKind,
    /// Its outcome.
    pub status: StepStatus,
    /// What happened, or why it failed and what to check.
    pub message: String,
    /// Stable code of the failure ([`crate::codes`]), for failed steps.
    pub code: Option<&'static str>,
    /// Time the step took.
    pub elapsed: Duration,
}

/// Every step of a connection attempt, in order; the last one failed if the attempt failed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionReport {
    /// The steps, in the order they ran.
    pub steps: Vec<Step>,
}

impl ConnectionReport {
    /// True when no step failed.
    pub fn is_ok(&self) -> bool {
        self.failed_step().is_none()
    }

    /// The step that failed, if any.
    pub fn failed_step(&self) -> Option<&Step> {
        self.steps.iter().find(|s| s.status == StepStatus::Failed)
    }

    /// The step of a given kind, if it ran.
    pub fn step(&self, kind: StepKind) -> Option<&Step> {
        self.steps.iter().find(|s| s.kind == kind)
    }

    pub(crate) fn push(
        &mut self,
        kind: StepKind,
        status: StepStatus,
        message: impl Into<String>,
        elapsed: Duration,
    ) {
        self.steps.push(Step {
            kind,
            status,
            message: message.into(),
            code: None,
            elapsed,
        });
    }

    pub(crate) fn fail(&mut self, kind: StepKind, err: &crate::ImapError, elapsed: Duration) {
        self.steps.push(Step {
            kind,
            status: StepStatus::Failed,
            message: err.to_string(),
            code: Some(err.code()),
            elapsed,
        });
    }
}

impl fmt::Display for ConnectionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            let mark = match s.status {
                StepStatus::Ok => "ok  ",
                StepStatus::Warning => "warn",
                StepStatus::Failed => "FAIL",
            };
            write!(f, "[{mark}] {}: {}", s.kind.label(), s.message)?;
            if let Some(code) = s.code {
                write!(f, " [{code}]")?;
            }
            writeln!(f, " ({} ms)", s.elapsed.as_millis())?;
        }
        Ok(())
    }
}
