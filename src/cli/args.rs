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
    /// Vault file [default: ./breakglass.db]; with approve or drill --challenge, an optional trusted copy
    #[arg(long, global = true, env = "BREAKGLASS_VAULT", value_name = "PATH")]
    pub vault: Option<PathBuf>,

    /// Refuse to act unless the vault has exactly this fingerprint (for scripts)
    #[arg(long, global = true, env = "BREAKGLASS_FINGERPRINT", value_name = "FP")]
    pub fingerprint: Option<String>,

    /// A hardware key's plugin that is silent this long is stopped and its share skipped (time at a PIN prompt does not count)
    #[arg(long, global = true, default_value_t = 60, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub plugin_timeout: u64,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a K-of-N vault for its custodians
    Init(InitArgs),
    /// List custodians, export a custodian's share envelope, or enrol as a passphrase custodian
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
    /// Custodian side, with only your key: check the request, then the read-back words, and write a one-line approval code
    Approve(ApproveArgs),
    /// Gather K custodian shares (local keys and remote approvals), reveal named secrets, start a new epoch
    Unseal(UnsealArgs),
    /// Each custodian given proves their share still decrypts and matches its commitment (logged); --remote/--challenge/--proof drill custodians at home
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
    ///
    /// After every write command this machine's queued alerts go out, every sink in parallel, within
    /// 3 s in total; what is not delivered stays queued, and a failing sink backs off (1 min,
    /// doubling up to 1 h). Each machine sends only the alerts it queued itself: a copy of the vault
    /// elsewhere never re-sends them. Events carry `event_id` for de-duplication.
    #[command(subcommand, verbatim_doc_comment)]
    Alerts(AlertsCommand),
    /// Read and verify the audit log (no quorum needed)
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or with --out-dir write one page per subcommand (breakglass-init.1, …)
    Man {
        /// Write breakglass.1 and a page per subcommand into this directory (created if missing)
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
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
    /// A custodian: NAME=age1…, NAME=ssh-ed25519 …, NAME=ssh-rsa …, NAME=BGENR1:… (a passphrase
    /// custodian's code from `custodian enroll`), NAME=@FILE (a key or such a code) or
    /// NAME=passphrase (typed at this terminal)
    #[arg(long = "custodian", value_name = "NAME=RECIPIENT", required = true)]
    pub custodians: Vec<String>,
    /// Read a passphrase custodian's passphrase from a file (for automation)
    #[arg(long = "passphrase-file", value_name = "NAME=PATH")]
    pub passphrase_files: Vec<String>,
    /// TEST ONLY: cheap Argon2id for passphrase custodians (and test-only enrolment codes are
    /// accepted). Insecure; `status` flags it
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
    /// On your own machine (no vault needed): derive your passphrase custodian key here
    /// and print a one-line public enrolment code (BGENR1:…) to send to the vault admin
    #[command(
        alias = "enrol",
        after_help = "Send the printed BGENR1:… line (public: name, derived recipient, Argon2id salt and cost, checksum) \
to the vault admin, who runs `breakglass init --custodian NAME=BGENR1:…` or `breakglass rekey --add-custodian NAME=BGENR1:…` \
(or NAME=@FILE with --out's file). Your passphrase never leaves this machine; keep it for approve, unseal and drill."
    )]
    Enroll(EnrollArgs),
}

/// `custodian enroll`: runs on the custodian's own machine; no vault is read or written.
#[derive(Args)]
pub struct EnrollArgs {
    /// Enrol as a passphrase custodian: your passphrase is asked twice here (or read from
    /// --passphrase-file) and never leaves this machine
    #[arg(long, required = true)]
    pub passphrase: bool,
    /// Your custodian name, exactly as the admin will give it to init or rekey
    #[arg(long, value_name = "NAME")]
    pub name: String,
    /// Read your passphrase from this file instead of the terminal (for automation)
    #[arg(long, value_name = "PATH")]
    pub passphrase_file: Option<PathBuf>,
    /// TEST ONLY: cheap Argon2id and no strength check; the code says so and a real vault refuses it
    #[arg(long)]
    pub insecure_test_only_kdf: bool,
    /// Also write the code to this file (must not exist), for the admin's NAME=@FILE
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Machine-readable output with stable keys
    #[arg(long)]
    pub json: bool,
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
    /// A built-in rotator for this secret: duo-bypass-codes, ldap-password or ad-password (its own credentials are given at rotation time, never stored; replaces an apply hook), or `none` to remove it
    #[arg(long, value_name = "KIND|none")]
    pub rotator: Option<String>,
    /// The rotator's config: a JSON file of non-secret settings (hosts, DNs, ids, counts); see the README
    #[arg(long, value_name = "FILE", requires = "rotator")]
    pub rotator_config: Option<PathBuf>,
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
        conflicts_with_all = ["exposed", "generate", "file", "apply", "max_age", "expires", "trust_hook", "rotator"]
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
    /// Run a stored apply hook or rotator that was set or changed after the last signed checkpoint (it is shown first)
    #[arg(long)]
    pub trust_hook: bool,
    /// Set this secret's rotator now (it runs, is kept, and replaces an apply hook): duo-bypass-codes, ldap-password or ad-password; or `none` to remove it and give the new value
    #[arg(long, value_name = "KIND|none", conflicts_with = "exposed")]
    pub rotator: Option<String>,
    /// The config of the rotator set with --rotator: a JSON file of non-secret settings; see the README
    #[arg(long, value_name = "FILE", requires = "rotator")]
    pub rotator_config: Option<PathBuf>,
    /// The rotator's own credentials (Duo Admin API secret key, LDAP/AD bind password) from this file, never stored; with --exposed, NAME=FILE per secret (repeatable). Else asked on the terminal
    #[arg(long = "credentials", value_name = "[NAME=]FILE")]
    pub credentials: Vec<String>,
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
    /// Where to write the request code (must not exist). It carries every
    /// custodian's envelope, so custodians need only their key
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write a shorter code with only NAME's envelope to FILE.NAME (same request, same words; repeatable)
    #[arg(long = "for", value_name = "NAME")]
    pub for_custodians: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ApproveArgs {
    /// The request code file, or - for stdin (it carries your envelope: no vault copy needed)
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
    /// An exported envelope, instead of the one the request carries (rarely needed)
    #[arg(long, value_name = "FILE")]
    pub envelope: Option<PathBuf>,
    /// The read-back words you heard from the requester (else you are asked, up to 3 tries)
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
    /// Vault side: write a drill challenge code to --out for custodians to answer from home
    #[arg(long, requires = "out", conflicts_with_all = ["challenge", "proofs", "full", "envelope"])]
    pub remote: bool,
    /// With --remote: how long the challenge may be answered (1m to 24h)
    #[arg(
        long,
        default_value = "24h",
        value_name = "DURATION",
        requires = "remote"
    )]
    pub ttl: String,
    /// Custodian side: answer this drill challenge code (file, or - for stdin) with your key; writes a proof code to --out
    #[arg(long, value_name = "FILE|-", requires = "out", conflicts_with_all = ["proofs", "full"])]
    pub challenge: Option<String>,
    /// Vault side: check custodians' proof code files and log each as their drill
    #[arg(long = "proof", value_name = "FILE", num_args = 1.., conflicts_with_all = ["full", "envelope"])]
    pub proofs: Vec<PathBuf>,
    /// Where to write the challenge (--remote) or proof (--challenge) code (must not exist)
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
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

/// The custodian side of a remote drill, borrowed from [`DrillArgs`].
pub struct ChallengeAnswerArgs<'a> {
    pub challenge: &'a str,
    pub out: Option<&'a PathBuf>,
    pub identities: &'a [PathBuf],
    pub passphrase_file: Option<&'a String>,
    pub custodian: Option<&'a String>,
    pub envelope: Option<&'a PathBuf>,
    pub json: bool,
}

impl DrillArgs {
    pub fn challenge_answer(&self) -> Option<ChallengeAnswerArgs<'_>> {
        Some(ChallengeAnswerArgs {
            challenge: self.challenge.as_deref()?,
            out: self.out.as_ref(),
            identities: &self.identities,
            passphrase_file: self.passphrase_files.first(),
            custodian: self.custodians.first(),
            envelope: self.envelope.as_ref(),
            json: self.json,
        })
    }
}

#[derive(Args)]
pub struct UnsealArgs {
    /// Why the vault is being opened (logged); with --request, the request's reason is used
    #[arg(long, required_unless_present = "request", conflicts_with = "request")]
    pub reason: Option<String>,
    /// A request made on this machine with `breakglass request` (its code file, or - for stdin)
    #[arg(long, value_name = "FILE|-")]
    pub request: Option<PathBuf>,
    /// Approval code files from remote custodians: several after one flag (`--approval dir/*`), repeatable; at most one code as - (stdin)
    #[arg(long = "approval", value_name = "FILE|-", requires = "request", num_args = 1..)]
    pub approvals: Vec<PathBuf>,
    /// An age identity file or OpenSSH private key of a custodian (repeatable)
    #[arg(long = "identity", value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// A passphrase custodian's passphrase from a file (repeatable)
    #[arg(long = "passphrase-file", value_name = "NAME=PATH")]
    pub passphrase_files: Vec<String>,
    /// A secret to reveal whole (repeatable; all reveals share this one quorum)
    #[arg(long = "reveal", value_name = "NAME")]
    pub reveal: Vec<String>,
    /// A bypass-codes secret: hand out only its next unused code and mark it used (repeatable; combines with --reveal)
    #[arg(long = "reveal-one", value_name = "NAME")]
    pub reveal_one: Vec<String>,
    /// Reveal version N of a secret whatever its state, e.g. a failed rotation's password the directory may hold (repeatable; `list --json` shows versions)
    #[arg(long = "reveal-version", value_name = "NAME=N")]
    pub reveal_version: Vec<String>,
    /// Do not move to a new key epoch after revealing (warned and logged; a re-key stays due)
    #[arg(long)]
    pub no_rekey: bool,
    /// Every bypass-codes secret named by --reveal hands out one code, as with --reveal-one; other secrets are still revealed whole (older form of --reveal-one)
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
    /// Add a custodian: NAME=age1…, NAME=ssh-…, NAME=BGENR1:… (from `custodian enroll`), NAME=@FILE or NAME=passphrase (repeatable)
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
    /// Queued alerts (undelivered; --all for every one), which machine queued each, and the sinks that back off
    List {
        /// Delivered ones too
        #[arg(long)]
        all: bool,
        /// Machine-readable output with stable keys
        #[arg(long)]
        json: bool,
    },
    /// Deliver this machine's queued alerts now, to every sink, backing off or not (exit 1 while any stays queued)
    Flush(FlushArgs),
}

#[derive(Args)]
pub struct FlushArgs {
    /// First make the undelivered alerts that another machine (or an older breakglass) queued this machine's, and send them: for a vault moved here for good. On a mere copy it re-sends what the other machine may have sent (receivers can drop repeats by event_id)
    #[arg(long)]
    pub adopt: bool,
    /// Machine-readable output with stable keys
    #[arg(long)]
    pub json: bool,
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
