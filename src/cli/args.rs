//! The clap definition: one source for --help, the man page and completions.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "breakglass",
    version,
    about = "Offline K-of-N emergency-access vault with a verifiable audit log",
    long_about = "Offline K-of-N emergency-access vault with a verifiable audit log.\n\n\
Secret values are never read from arguments or the environment: they come from --file, \
stdin (when not a terminal) or a hidden prompt. Exit codes: 0 ok, 1 failure or failed check, 2 usage."
)]
pub struct Cli {
    /// Vault file [default: ./breakglass.db]
    #[arg(long, global = true, env = "BREAKGLASS_VAULT", value_name = "PATH")]
    pub vault: Option<PathBuf>,

    /// Refuse to act unless the vault has exactly this fingerprint (for scripts)
    #[arg(long, global = true, env = "BREAKGLASS_FINGERPRINT", value_name = "FP")]
    pub fingerprint: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a K-of-N vault for its custodians
    Init(InitArgs),
    /// List custodians or export a custodian's share envelope
    #[command(subcommand)]
    Custodian(CustodianCommand),
    /// Deposit a new version of a secret (no quorum needed)
    Put(PutArgs),
    /// Deposit a new version and apply it (two-phase, with an optional hook); no quorum needed
    Rotate(RotateArgs),
    /// List secrets: names, kinds, usernames, URLs, versions, state; never values
    List(JsonFlag),
    /// Fingerprint, epoch, threshold, custodians, drills, open requests, and anything that needs attention
    Status(StatusArgs),
    /// Show the emergency runbook (readable without a quorum), or `runbook set` it
    Runbook(RunbookArgs),
    /// Start a remote request: a one-line request code and read-back words to send to custodians
    Request(RequestArgs),
    /// Custodian side: check the read-back words and turn your share into a one-line approval code
    Approve(ApproveArgs),
    /// Gather K custodian shares (local keys and remote approvals), reveal named secrets, start a new epoch
    Unseal(UnsealArgs),
    /// Each custodian given proves their share still decrypts and matches its commitment (logged)
    Drill(DrillArgs),
    /// With a quorum, move to a new key epoch, optionally changing threshold or custodians
    Rekey(RekeyArgs),
    /// Deliberately re-pin the --vault path after replacing its file on purpose; names both fingerprints
    Repin {
        /// The fingerprint this machine pinned for the path
        old: String,
        /// The fingerprint the file at the path holds now
        new: String,
    },
    /// Compare another copy of the vault with this one: same vault, epochs, diverged logs
    VerifyCopy {
        other: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The alert outbox: list it, or deliver what is queued
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// Read and verify the audit log (no quorum needed)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

#[derive(Args)]
pub struct JsonFlag {
    /// Machine-readable output with stable keys
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct InitArgs {
    /// Shares needed to open the vault (2 ≤ K ≤ N)
    #[arg(long, value_name = "K")]
    pub threshold: usize,
    /// A custodian: NAME=age1…, NAME=ssh-ed25519 …, NAME=ssh-rsa …, NAME=@FILE or NAME=passphrase
    #[arg(long = "custodian", value_name = "NAME=RECIPIENT", required = true)]
    pub custodians: Vec<String>,
    /// Read a passphrase custodian's passphrase from a file (for automation)
    #[arg(long = "passphrase-file", value_name = "NAME=PATH")]
    pub passphrase_files: Vec<String>,
    /// TEST ONLY: cheap Argon2id for passphrase custodians. Insecure; `status` flags it
    #[arg(long)]
    pub insecure_test_only_kdf: bool,
    #[command(flatten)]
    pub alerts: AlertArgs,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum CustodianCommand {
    /// Names, recipient kinds and share indexes
    List(JsonFlag),
    /// Write a custodian's share envelope: a standard age file (`age -d -i KEY` opens it)
    Export {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Where to write it (must not exist)
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        out: Option<PathBuf>,
        /// Write every custodian's envelope to --out-dir as NAME.age
        #[arg(long, requires = "out_dir")]
        all: bool,
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Jsonl,
    Csv,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KindArg {
    Password,
    BypassCodes,
    Note,
}

#[derive(Args)]
pub struct PutArgs {
    pub name: String,
    #[arg(long, value_enum)]
    pub kind: KindArg,
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub url: Option<String>,
    /// Non-secret runbook note stored in the clear
    #[arg(long)]
    pub note: Option<String>,
    /// Read the value from this file (else stdin, else a hidden prompt)
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Rotation hook: `sh -c CMD` gets each new value on stdin (e.g. chpasswd, ldappasswd)
    #[arg(long, value_name = "CMD")]
    pub apply: Option<String>,
    /// Flag the secret in `status` when not rotated within this long, e.g. 90d
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Date the credential stops working (YYYY-MM-DD); `status` flags it two weeks ahead
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum CharsetArg {
    Alnum,
    AlnumSymbols,
    Hex,
    Digits,
}

#[derive(Args)]
pub struct RotateArgs {
    /// The secret to rotate
    #[arg(required_unless_present = "exposed", conflicts_with = "exposed")]
    pub name: Option<String>,
    /// Rotate every exposed secret that has a generator or a hook; list the rest
    #[arg(long)]
    pub exposed: bool,
    /// Settle a rotation of NAME left pending by a crash or kill: keep its new version as failed; the active version stays
    #[arg(
        long,
        requires = "name",
        conflicts_with_all = ["exposed", "generate", "file", "apply", "max_age", "expires", "trust_hook"]
    )]
    pub abandon: bool,
    /// Draw a new password from the OS CSPRNG
    #[arg(long, conflicts_with = "file")]
    pub generate: bool,
    /// Generated password length
    #[arg(long, default_value_t = 24, requires = "generate")]
    pub length: usize,
    /// Generated password alphabet
    #[arg(long, value_enum, default_value = "alnum", requires = "generate")]
    pub charset: CharsetArg,
    /// Read the new value from this file (else stdin, else a hidden prompt)
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Set this secret's apply hook: `sh -c CMD` gets the new value on stdin
    #[arg(long, value_name = "CMD")]
    pub apply: Option<String>,
    /// Flag the secret in `status` when not rotated within this long, e.g. 90d
    #[arg(long, value_name = "DURATION")]
    pub max_age: Option<String>,
    /// Date the credential stops working (YYYY-MM-DD); `status` flags it two weeks ahead
    #[arg(long, value_name = "DATE")]
    pub expires: Option<String>,
    /// Run a stored apply hook that was set or changed after the last signed checkpoint (it is shown first)
    #[arg(long)]
    pub trust_hook: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RunbookArgs {
    #[command(subcommand)]
    pub command: Option<RunbookCommand>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum RunbookCommand {
    /// Replace the runbook text (from --file, else stdin)
    Set {
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct StatusArgs {
    /// Exit 1 when anything needs attention (for cron and monitoring)
    #[arg(long)]
    pub check: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct RequestArgs {
    /// Why the vault must be opened (custodians see it; logged)
    #[arg(long)]
    pub reason: String,
    /// How long approvals may be collected: e.g. 30m, 2h, 24h (1m to 24h)
    #[arg(long, default_value = "2h", value_name = "DURATION")]
    pub ttl: String,
    /// Where to write the request code (must not exist)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ApproveArgs {
    /// The request code file, or - for stdin
    #[arg(long, value_name = "FILE|-")]
    pub request: String,
    /// Your age identity file or OpenSSH private key
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// Your passphrase from a file, as NAME=PATH (passphrase custodians)
    #[arg(long = "passphrase-file", value_name = "NAME=PATH")]
    pub passphrase_file: Option<String>,
    /// Your custodian name, to be asked for your passphrase on the terminal
    #[arg(long, value_name = "NAME")]
    pub custodian: Option<String>,
    /// Your exported envelope (else the envelope in the --vault copy is used)
    #[arg(long, value_name = "FILE")]
    pub envelope: Option<PathBuf>,
    /// The read-back words you heard from the requester (else you are asked)
    #[arg(long, value_name = "\"W1 W2 W3 W4 W5 W6\"")]
    pub words: Option<String>,
    /// Where to write the approval code (must not exist)
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct DrillArgs {
    /// A custodian's age identity file or OpenSSH private key (repeatable)
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// A passphrase custodian's passphrase from a file (repeatable)
    #[arg(long = "passphrase-file", value_name = "NAME=PATH")]
    pub passphrase_files: Vec<String>,
    /// A passphrase custodian to ask for their passphrase on the terminal (repeatable)
    #[arg(long = "custodian", value_name = "NAME")]
    pub custodians: Vec<String>,
    /// Test this exported envelope instead of the vault's copy
    #[arg(long, value_name = "FILE", conflicts_with = "full")]
    pub envelope: Option<PathBuf>,
    /// With K or more custodians: also combine the shares in memory, check they
    /// rebuild the vault key, and sign an audit checkpoint (nothing is revealed)
    #[arg(long)]
    pub full: bool,
    /// Endorse the versions and rotation settings written since the last checkpoint (they are listed first); without it a terminal asks, and with no terminal they stay unendorsed
    #[arg(long)]
    pub endorse: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct UnsealArgs {
    /// Why the vault is being opened (logged); with --request, the request's reason is used
    #[arg(long, required_unless_present = "request", conflicts_with = "request")]
    pub reason: Option<String>,
    /// A request made on this machine with `breakglass request`
    #[arg(long, value_name = "FILE")]
    pub request: Option<PathBuf>,
    /// An approval code file from a remote custodian (repeatable)
    #[arg(long = "approval", value_name = "FILE", requires = "request")]
    pub approvals: Vec<PathBuf>,
    /// An age identity file or OpenSSH private key of a custodian (repeatable)
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// A passphrase custodian's passphrase from a file (repeatable)
    #[arg(long = "passphrase-file", value_name = "NAME=PATH")]
    pub passphrase_files: Vec<String>,
    /// A secret to reveal (repeatable)
    #[arg(long = "reveal", value_name = "NAME")]
    pub reveal: Vec<String>,
    /// Do not move to a new key epoch after revealing (warned and logged; a re-key stays due)
    #[arg(long)]
    pub no_rekey: bool,
    /// For bypass-codes secrets: reveal only the next unused code and mark it used
    #[arg(long)]
    pub one: bool,
    /// Endorse the versions and rotation settings written since the last checkpoint (they are listed first); without it a terminal asks, and with no terminal they stay unendorsed
    #[arg(long)]
    pub endorse: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The log, oldest first
    Log(JsonFlag),
    /// Check the hash chain and signed checkpoints; exit 1 naming the first bad entry
    Verify {
        /// Also fail if the log no longer contains this anchored head (file, or - for stdin)
        #[arg(long, value_name = "FILE|-")]
        anchor: Option<String>,
        /// Verify a JSONL export instead of a vault (no vault needed)
        #[arg(long, value_name = "EXPORT.jsonl")]
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print a one-line anchor of the log head, to keep outside the vault
    Head(JsonFlag),
    /// Bring another copy's diverged entries into this log, citing their seq and hash
    Merge {
        other: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Export the log for auditors: self-checking JSONL (with manifests) or CSV
    Export {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: ExportFormat,
        /// Only entries from this seq on
        #[arg(long, value_name = "SEQ")]
        since: Option<u64>,
        /// Write here (must not exist) instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Args)]
pub struct RekeyArgs {
    /// New threshold K (default: unchanged)
    #[arg(long, value_name = "K")]
    pub threshold: Option<usize>,
    /// Add a custodian: NAME=age1…, NAME=ssh-…, NAME=@FILE or NAME=passphrase (repeatable)
    #[arg(long = "add-custodian", value_name = "NAME=RECIPIENT")]
    pub add: Vec<String>,
    /// Remove a custodian (repeatable)
    #[arg(long = "remove-custodian", value_name = "NAME")]
    pub remove: Vec<String>,
    /// A current custodian's age identity file or OpenSSH private key (repeatable)
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// A passphrase from a file, for a current or an added passphrase custodian (repeatable)
    #[arg(long = "passphrase-file", value_name = "NAME=PATH")]
    pub passphrase_files: Vec<String>,
    /// Why (logged)
    #[arg(long, default_value = "scheduled rekey")]
    pub reason: String,
    /// Given any --alert-* option, the sinks are replaced by exactly those given
    #[command(flatten)]
    pub alerts: AlertArgs,
    /// Remove every alert sink
    #[arg(long, conflicts_with_all = ["alert_exec", "alert_webhook", "alert_syslog"])]
    pub clear_alerts: bool,
    /// Endorse the versions and rotation settings written since the last checkpoint (they are listed first); without it a terminal asks, and with no terminal they stay unendorsed
    #[arg(long)]
    pub endorse: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum AlertsCommand {
    /// Queued alerts (undelivered; --all for every one)
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Try to deliver every queued alert now
    Flush(JsonFlag),
}

/// Alert sinks, kept in the signed manifest (set at init, changed by rekey).
#[derive(Args)]
pub struct AlertArgs {
    /// Alert on every use: `sh -c CMD` gets each JSON event on stdin (repeatable)
    #[arg(long = "alert-exec", value_name = "CMD")]
    pub alert_exec: Vec<String>,
    /// Alert on every use: POST each JSON event to https://host[:port]/path (or http://) (repeatable)
    #[arg(long = "alert-webhook", value_name = "URL")]
    pub alert_webhook: Vec<String>,
    /// Alert on every use: RFC 5424 to host:port (UDP), tcp:host:port or unix:/dev/log (repeatable)
    #[arg(long = "alert-syslog", value_name = "ADDR")]
    pub alert_syslog: Vec<String>,
}
