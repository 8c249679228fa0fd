//! The `fastway` command line: every flag of the Go command with its default (`docs/fastway.md`), in
//! Go's `flag` syntax (`-Name=value`, `-Name value`, `--Name=value`, a bare
//! boolean flag meaning true), mapped onto [`Config`].
//!
//! Arguments are first rewritten into `--Name value` pairs, the form
//! `pico-args` reads, then each flag is taken out by name; whatever is left
//! is an unknown flag.
//!
//! Each default is written once: the library's in [`Config::default`], the
//! command's own (addresses, workers, the pool type) in
//! [`Options::default`]; `-help` shows them as read back from there, and a
//! test holds them to `docs/fastway.md`.

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use super::value::{parse_bool, parse_count, parse_duration, parse_size, show_duration, show_size};
use crate::config::{AcceptRate, Config, Side, SnetConfig};
use crate::tls::TlsFiles;

/// What a flag's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true`/`false`; alone it means true.
    Bool,
    /// A byte count with an optional K/M suffix.
    Size,
    /// A whole number.
    Count,
    /// A Go duration.
    Duration,
    /// Free text (addresses, keys, names).
    Text,
}

/// One flag of the command line.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// `--Name`: the name after two dashes, the form `pico-args` looks for.
    pub key: &'static str,
    /// What its value is.
    pub kind: Kind,
    /// What it does.
    pub help: &'static str,
}

impl Flag {
    /// The name, as written after the dash.
    pub fn name(&self) -> &'static str {
        &self.key[2..]
    }

    /// The default, written as on the command line (what `-help` shows):
    /// read from [`Options::default`], which takes the library's values
    /// from [`Config::default`], so each default is written once.
    pub fn default_value(&self) -> String {
        shown(&Options::default(), self.name())
    }
}

const fn flag(key: &'static str, kind: Kind, help: &'static str) -> Flag {
    Flag { key, kind, help }
}

/// The environment variable that gives the servers' key when neither
/// `-ServerAuthKey` nor `-ServerAuthKeyFile` does.
pub const AUTH_KEY_ENV: &str = "FASTWAY_SERVER_AUTH_KEY";

/// Every flag, in the order `-help` lists them.
pub const FLAGS: &[Flag] = &[
    flag("--ReusePort", Kind::Bool, "bind listeners with SO_REUSEPORT so several gateways can share the client port"),
    flag("--MaxPacket", Kind::Size, "largest frame Length accepted"),
    flag("--MaxClients", Kind::Count, "most client connections at once; more are closed at once (0: no limit)"),
    flag("--MaxClientsPerIP", Kind::Count, "most client connections from one IPv4 address or IPv6 /64 (0: no limit)"),
    flag("--MaxServers", Kind::Count, "most server connections at once, handshaking ones included (0: no limit)"),
    flag("--AcceptRatePerIP", Kind::Count, "most new connections per second from one IPv4 address or IPv6 /64, per listener (0: no limit)"),
    flag("--AcceptBurstPerIP", Kind::Count, "new connections one source may open at once before AcceptRatePerIP applies"),
    flag("--MaxPartialBytes", Kind::Size, "most bytes all partly received large frames may hold; past it the peers furthest from finishing are cut (0: no limit)"),
    flag("--MaxPause", Kind::Duration, "longest a client waits unread for a congested server before its vconns to that server are closed (at most half ClientIdleTimeout)"),
    flag("--ServerMaxGroups", Kind::Count, "most groups one server may keep at the gateway; a Join over it is refused"),
    flag("--GroupMaxMembers", Kind::Count, "most vconns in one group; a Join over it is refused"),
    flag("--VConnMaxGroups", Kind::Count, "most groups one vconn may be in; a Join over it is refused"),
    flag("--MemPoolType", Kind::Text, "buffer pool variant: sync, atom or chan (one pool in a single-threaded reactor; all three mean the same)"),
    flag("--MemPoolFactor", Kind::Count, "growth factor between pool chunk size classes"),
    flag("--MemPoolMaxChunk", Kind::Size, "largest pooled chunk"),
    flag("--MemPoolMinChunk", Kind::Size, "smallest pooled chunk"),
    flag("--MemPoolPageSize", Kind::Size, "size of each pool page from which chunks are cut"),
    flag("--ClientAddr", Kind::Text, "address clients connect to"),
    flag("--ClientTlsCert", Kind::Text, "PEM certificate chain: clients connect with TLS (with ClientTlsKey; reloaded on SIGHUP)"),
    flag("--ClientTlsKey", Kind::Text, "PEM private key for ClientTlsCert"),
    flag("--ClientWsAddr", Kind::Text, "address browser clients connect to over WebSocket (off when empty)"),
    flag("--ClientWsPath", Kind::Text, "the WebSocket request path"),
    flag("--ClientWsOrigins", Kind::Text, "comma-separated Origin values allowed to open a WebSocket (any when empty)"),
    flag("--ClientWsTlsCert", Kind::Text, "PEM certificate chain: the WebSocket listener speaks WSS (with ClientWsTlsKey; reloaded on SIGHUP)"),
    flag("--ClientWsTlsKey", Kind::Text, "PEM private key for ClientWsTlsCert"),
    flag("--ClientProxyProtocol", Kind::Bool, "clients come through a load balancer that starts each connection with a PROXY header (v1 or v2)"),
    flag("--ClientMaxConn", Kind::Count, "most vconns one client may have"),
    flag("--ClientBufferSize", Kind::Size, "read buffer size per client connection"),
    flag("--ClientIdleTimeout", Kind::Duration, "close a client silent for this long; clients must ping sooner"),
    flag("--ClientSendChanSize", Kind::Count, "most messages queued to one client before it counts as a slow consumer"),
    flag("--Workers", Kind::Count, "reactor threads (0: one per core); clients share ClientAddr, worker i takes servers on ServerAddr's port + i"),
    flag("--MetricsAddr", Kind::Text, "serve Prometheus metrics at http://ADDR/metrics (e.g. :9100); off when empty"),
    flag("--ClientSnetEnable", Kind::Bool, "clients speak snet: links that survive reconnects (plain TCP listener)"),
    flag("--ClientSnetEncrypt", Kind::Bool, "encrypt client snet streams"),
    flag("--ClientSnetBuffer", Kind::Size, "snet resend buffer per client connection"),
    flag("--ClientSnetInitTimeout", Kind::Duration, "snet handshake timeout for clients"),
    flag("--ClientSnetWaitTimeout", Kind::Duration, "how long a broken client snet link waits for a reconnect"),
    flag("--ServerAddr", Kind::Text, "address servers connect to"),
    flag("--ServerTlsCert", Kind::Text, "PEM certificate chain: servers connect with TLS (with ServerTlsKey; reloaded on SIGHUP)"),
    flag("--ServerTlsKey", Kind::Text, "PEM private key for ServerTlsCert"),
    flag("--ServerTlsClientCA", Kind::Text, "PEM CA certificates: servers must present a certificate one of them signed"),
    flag("--ServerProxyProtocol", Kind::Bool, "servers come through a load balancer that starts each connection with a PROXY header (v1 or v2)"),
    flag("--ServerAuthKey", Kind::Text, "shared key servers prove in the handshake (alias: ServerAuthPassword)"),
    flag("--ServerAuthPassword", Kind::Text, "alias of ServerAuthKey"),
    flag("--ServerAuthKeyFile", Kind::Text, "read ServerAuthKey from this file (one line; keeps the key out of ps); the FASTWAY_SERVER_AUTH_KEY environment variable is read when neither is given"),
    flag("--ServerBufferSize", Kind::Size, "read buffer size per server connection"),
    flag("--ServerIdleTimeout", Kind::Duration, "close a server silent for this long"),
    flag("--ServerSendChanSize", Kind::Count, "most messages queued to one server"),
    flag("--ServerSnetEnable", Kind::Bool, "servers speak snet: links that survive reconnects (plain TCP listener)"),
    flag("--ServerSnetEncrypt", Kind::Bool, "encrypt server snet streams"),
    flag("--ServerSnetBuffer", Kind::Size, "snet resend buffer per server connection"),
    flag("--ServerSnetInitTimeout", Kind::Duration, "snet handshake timeout for servers"),
    flag("--ServerSnetWaitTimeout", Kind::Duration, "how long a broken server snet link waits for a reconnect"),
];

/// Everything the command line decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The gateway's configuration.
    pub config: Config,
    /// Where clients connect, as given (`:0`, `host:port`).
    pub client_addr: String,
    /// Where servers connect, as given.
    pub server_addr: String,
    /// Bind with SO_REUSEPORT.
    pub reuse_port: bool,
    /// `MemPoolType`, accepted for compatibility.
    pub pool_type: String,
    /// `AcceptBurstPerIP`, applied when `AcceptRatePerIP` is set.
    pub accept_burst: u32,
    /// TLS on the client listener (`ClientTlsCert`, `ClientTlsKey`).
    pub client_tls: Option<TlsFiles>,
    /// The WebSocket listener's address (`ClientWsAddr`), if any.
    pub ws_addr: Option<String>,
    /// Its request path (`ClientWsPath`).
    pub ws_path: String,
    /// The Origins it allows (`ClientWsOrigins`); empty: any.
    pub ws_origins: Vec<String>,
    /// WSS (`ClientWsTlsCert`, `ClientWsTlsKey`).
    pub ws_tls: Option<TlsFiles>,
    /// TLS on the server listener (`ServerTlsCert`, `ServerTlsKey`,
    /// `ServerTlsClientCA`).
    pub server_tls: Option<TlsFiles>,
    /// snet per side, client then server (`*SnetEnable`).
    pub snet_on: [bool; 2],
    /// The other `*Snet*` flags per side, applied when snet is on.
    pub snet: [SnetConfig; 2],
    /// Where to serve Prometheus metrics (`MetricsAddr`), if anywhere.
    pub metrics_addr: Option<String>,
    /// Reactor threads (`Workers`); 0: one per core.
    pub workers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            config: Config::default(),
            client_addr: ":0".into(),
            server_addr: ":0".into(),
            reuse_port: false,
            pool_type: "atom".into(),
            accept_burst: 10,
            client_tls: None,
            ws_addr: None,
            ws_path: "/".into(),
            ws_origins: Vec::new(),
            ws_tls: None,
            server_tls: None,
            snet_on: [false; 2],
            metrics_addr: None,
            workers: 1,
            snet: [
                SnetConfig::defaults(Side::Client),
                SnetConfig::defaults(Side::Server),
            ],
        }
    }
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Print the usage and exit 0.
    Help,
    /// Run the gateway.
    Run(Box<Options>),
}

/// A command line that cannot be run, in one line naming the flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagError(pub String);

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FlagError {}

fn find(name: &str) -> Option<&'static Flag> {
    FLAGS.iter().find(|f| f.name() == name)
}

/// Rewrites Go-style arguments into `--Name=value` form. Returns `None` if
/// help was asked for.
fn normalize(args: Vec<OsString>) -> Result<Option<Vec<OsString>>, FlagError> {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    while let Some(arg) = iter.next() {
        let Some(text) = arg.to_str() else {
            return Err(FlagError(format!("argument {arg:?} is not valid UTF-8")));
        };
        if text == "--" {
            out.extend(iter.by_ref());
            break;
        }
        let Some(body) = text.strip_prefix("--").or_else(|| text.strip_prefix('-')) else {
            return Err(FlagError(format!(
                "unexpected argument {text:?} (flags start with -)"
            )));
        };
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        if matches!(name, "h" | "help") {
            return Ok(None);
        }
        let Some(spec) = find(name) else {
            return Err(FlagError(format!("flag provided but not defined: -{name}")));
        };
        let value = match (value, spec.kind) {
            (Some(v), _) => v,
            (None, Kind::Bool) => "true".to_string(),
            (None, _) => match iter.next() {
                Some(v) => v.into_string().map_err(|v| {
                    FlagError(format!("flag -{name}: value {v:?} is not valid UTF-8"))
                })?,
                None => return Err(FlagError(format!("flag needs an argument: -{name}"))),
            },
        };
        // `--Name value`, the form pico-args reads first: any value goes
        // through as given, the empty one (`-Name=`, as Go) included.
        out.push(format!("--{name}").into());
        out.push(value.into());
    }
    Ok(Some(out))
}

/// Parses the command line (without the program name), with the servers'
/// key from [`AUTH_KEY_ENV`] if the flags give none.
pub fn parse(args: Vec<OsString>) -> Result<Parsed, FlagError> {
    parse_with_env(args, std::env::var_os(AUTH_KEY_ENV))
}

/// [`parse`], with the value of [`AUTH_KEY_ENV`] given.
pub fn parse_with_env(args: Vec<OsString>, env_key: Option<OsString>) -> Result<Parsed, FlagError> {
    let Some(args) = normalize(args)? else {
        return Ok(Parsed::Help);
    };
    let mut given: Vec<(&'static Flag, String)> = Vec::new();
    let mut pargs = pico_args::Arguments::from_vec(args);
    for spec in FLAGS {
        // Go lets a later occurrence override an earlier one.
        while let Some(v) = pargs
            .opt_value_from_str::<_, String>(spec.key)
            .map_err(|e| FlagError(format!("flag -{}: {e}", spec.name())))?
        {
            given.retain(|(f, _)| f.name() != spec.name());
            given.push((spec, v));
        }
    }
    if let Some(extra) = pargs.finish().first() {
        return Err(FlagError(format!("unexpected argument {extra:?}")));
    }
    let set = |name: &str| given.iter().any(|(f, _)| f.name() == name);
    let key_flag = set("ServerAuthKey") || set("ServerAuthPassword");
    if key_flag && set("ServerAuthKeyFile") {
        return Err(FlagError(
            "flags -ServerAuthKey and -ServerAuthKeyFile both give the key; use one".into(),
        ));
    }
    let from_file = set("ServerAuthKeyFile");
    let mut opts = Options::default();
    for (spec, value) in &given {
        apply(&mut opts, spec, value).map_err(|e| {
            FlagError(format!(
                "invalid value {value:?} for flag -{}: {e}",
                spec.name()
            ))
        })?;
    }
    let text = |name: &str| {
        given
            .iter()
            .rev()
            .find(|(f, _)| f.name() == name)
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    opts.client_tls = tls_files(text("ClientTlsCert"), text("ClientTlsKey"), None, "Client")?;
    opts.ws_tls = tls_files(
        text("ClientWsTlsCert"),
        text("ClientWsTlsKey"),
        None,
        "ClientWs",
    )?;
    opts.ws_addr = text("ClientWsAddr");
    opts.metrics_addr = text("MetricsAddr");
    if let Some(path) = text("ClientWsPath") {
        if !path.starts_with('/') {
            return Err(FlagError(format!(
                "invalid value {path:?} for flag -ClientWsPath: must start with /"
            )));
        }
        opts.ws_path = path;
    }
    opts.ws_origins = text("ClientWsOrigins")
        .map(|o| {
            o.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if opts.ws_addr.is_none() && opts.ws_tls.is_some() {
        return Err(FlagError(
            "flag -ClientWsTlsCert needs -ClientWsAddr".into(),
        ));
    }
    opts.server_tls = tls_files(
        text("ServerTlsCert"),
        text("ServerTlsKey"),
        text("ServerTlsClientCA"),
        "Server",
    )?;
    if let Some(rate) = &mut opts.config.accept_rate_per_ip {
        rate.burst = opts.accept_burst;
    }
    for (on, tls, name) in [
        (opts.snet_on[0], opts.client_tls.is_some(), "Client"),
        (opts.snet_on[1], opts.server_tls.is_some(), "Server"),
    ] {
        if on && tls {
            return Err(FlagError(format!(
                "flag -{name}SnetEnable cannot be used with -{name}TlsCert: snet runs over plain TCP (use one or the other)"
            )));
        }
    }
    opts.config.client.snet = opts.snet_on[0].then_some(opts.snet[0]);
    opts.config.server.snet = opts.snet_on[1].then_some(opts.snet[1]);
    if !key_flag && !from_file {
        if let Some(key) = env_key.filter(|k| !k.is_empty()) {
            let key = key
                .into_string()
                .map_err(|_| FlagError(format!("{AUTH_KEY_ENV} is not valid UTF-8")))?;
            opts.config.auth_key = key.into_bytes();
        }
    }
    opts.config.validate().map_err(|e| {
        // Name the flag the user set when the rule is between two.
        let (flag, problem) = match &e.other {
            Some((other, problem)) if !set(e.field) && set(other) => (*other, problem.as_str()),
            _ => (e.field, e.problem.as_str()),
        };
        FlagError(format!("invalid flag -{flag}: {problem}"))
    })?;
    Ok(Parsed::Run(Box::new(opts)))
}

/// A listener's TLS files from its flags: both or neither of the
/// certificate and the key.
fn tls_files(
    cert: Option<String>,
    key: Option<String>,
    client_ca: Option<String>,
    side: &str,
) -> Result<Option<TlsFiles>, FlagError> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert_chain: cert.into(),
            key: key.into(),
            client_ca: client_ca.map(Into::into),
        })),
        (None, None) if client_ca.is_some() => Err(FlagError(format!(
            "flag -{side}TlsClientCA needs -{side}TlsCert and -{side}TlsKey"
        ))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(FlagError(format!(
            "flag -{side}TlsCert needs -{side}TlsKey (the certificate's private key)"
        ))),
        (None, Some(_)) => Err(FlagError(format!(
            "flag -{side}TlsKey needs -{side}TlsCert (the certificate chain)"
        ))),
    }
}

/// The key in a key file: its content without the line ending.
fn read_key_file(path: &str) -> Result<Vec<u8>, String> {
    let mut key = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    while matches!(key.last(), Some(b'\n' | b'\r')) {
        key.pop();
    }
    if key.is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(key)
}

fn usize_of(n: u64) -> Result<usize, String> {
    usize::try_from(n).map_err(|_| "too large".to_string())
}

fn apply(o: &mut Options, spec: &Flag, v: &str) -> Result<(), String> {
    let c = &mut o.config;
    let size = || parse_size(v).and_then(usize_of);
    let count = || parse_count(v).and_then(usize_of);
    let dur = || parse_duration(v);
    let side = if spec.name().starts_with("Client") {
        0
    } else {
        1
    };
    match spec.name() {
        "ReusePort" => o.reuse_port = parse_bool(v)?,
        "Workers" => o.workers = count()?.min(1024),
        "MaxPacket" => {
            c.max_packet = u32::try_from(parse_size(v)?).map_err(|_| "must fit in 32 bits")?
        }
        "MemPoolType" => match v {
            "sync" | "atom" | "chan" => o.pool_type = v.to_string(),
            _ => return Err("must be sync, atom or chan".into()),
        },
        "MemPoolFactor" => c.pool.factor = count()?,
        "MaxClients" => c.client.max_conns = unlimited_if_zero(count()?),
        "MaxPartialBytes" => c.max_partial_bytes = unlimited_if_zero(size()?),
        "MaxServers" => c.server.max_conns = unlimited_if_zero(count()?),
        "MaxClientsPerIP" => c.max_clients_per_ip = unlimited_if_zero(count()?),
        "AcceptRatePerIP" => {
            c.accept_rate_per_ip = unlimited_if_zero(count()?).map(|n| AcceptRate {
                per_sec: n as f64,
                burst: o.accept_burst,
            })
        }
        "AcceptBurstPerIP" => {
            o.accept_burst = u32::try_from(count()?).map_err(|_| "must fit in 32 bits")?
        }
        "MemPoolMaxChunk" => c.pool.max_chunk = size()?,
        "MemPoolMinChunk" => c.pool.min_chunk = size()?,
        "MemPoolPageSize" => c.pool.page_size = size()?,
        "ClientAddr" => o.client_addr = v.to_string(),
        "ClientProxyProtocol" => c.client.proxy_protocol = parse_bool(v)?,
        // Read as a group once all flags are in.
        "ClientTlsCert" | "ClientTlsKey" | "ServerTlsCert" | "ServerTlsKey"
        | "ServerTlsClientCA" | "ClientWsAddr" | "ClientWsPath" | "ClientWsOrigins"
        | "ClientWsTlsCert" | "ClientWsTlsKey" | "MetricsAddr" => {}
        "ServerProxyProtocol" => c.server.proxy_protocol = parse_bool(v)?,
        "ServerAddr" => o.server_addr = v.to_string(),
        "ClientMaxConn" => {
            c.client.max_vconns =
                Some(u32::try_from(parse_count(v)?).map_err(|_| "must fit in 32 bits")?)
        }
        "ClientBufferSize" => c.client.buffer_size = size()?,
        "ServerBufferSize" => c.server.buffer_size = size()?,
        "ClientIdleTimeout" => c.client.idle_timeout = nonzero(dur()?)?,
        "ServerIdleTimeout" => c.server.idle_timeout = nonzero(dur()?)?,
        "MaxPause" => c.max_pause = nonzero(dur()?)?,
        "ServerMaxGroups" => c.groups.max_groups = count()?,
        "GroupMaxMembers" => c.groups.max_members = count()?,
        "VConnMaxGroups" => c.groups.max_per_vconn = count()?,
        "ClientSendChanSize" => c.client.send_queue_msgs = count()?,
        "ServerSendChanSize" => c.server.send_queue_msgs = count()?,
        "ServerAuthKey" | "ServerAuthPassword" => c.auth_key = v.as_bytes().to_vec(),
        "ServerAuthKeyFile" => c.auth_key = read_key_file(v)?,
        "ClientSnetEnable" | "ServerSnetEnable" => o.snet_on[side] = parse_bool(v)?,
        "ClientSnetEncrypt" | "ServerSnetEncrypt" => o.snet[side].settings.encrypt = parse_bool(v)?,
        "ClientSnetBuffer" | "ServerSnetBuffer" => o.snet[side].settings.buffer = size()?,
        "ClientSnetInitTimeout" | "ServerSnetInitTimeout" => {
            o.snet[side].init_timeout = nonzero(dur()?)?
        }
        "ClientSnetWaitTimeout" | "ServerSnetWaitTimeout" => {
            o.snet[side].wait_timeout = nonzero(dur()?)?
        }
        other => return Err(format!("flag {other} has no meaning here")),
    }
    Ok(())
}

/// Go's convention for limits: 0 means none.
fn unlimited_if_zero(n: usize) -> Option<usize> {
    (n > 0).then_some(n)
}

fn nonzero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("must be greater than zero".into())
    } else {
        Ok(d)
    }
}

/// The value flag `name` has in `o`, written as on the command line (the
/// reverse of `apply`).
fn shown(o: &Options, name: &str) -> String {
    let c = &o.config;
    let side = usize::from(!name.starts_with("Client"));
    let limit = |n: Option<usize>| n.unwrap_or(0).to_string();
    let path = |t: &Option<TlsFiles>, pick: fn(&TlsFiles) -> Option<&std::path::Path>| {
        t.as_ref()
            .and_then(pick)
            .map_or(String::new(), |p| p.display().to_string())
    };
    let snet = &o.snet[side];
    match name {
        "ReusePort" => o.reuse_port.to_string(),
        "Workers" => o.workers.to_string(),
        "MaxPacket" => show_size(u64::from(c.max_packet)),
        "MemPoolType" => o.pool_type.clone(),
        "MemPoolFactor" => c.pool.factor.to_string(),
        "MaxClients" => limit(c.client.max_conns),
        "MaxPartialBytes" => show_size(c.max_partial_bytes.unwrap_or(0) as u64),
        "MaxServers" => limit(c.server.max_conns),
        "MaxClientsPerIP" => limit(c.max_clients_per_ip),
        "AcceptRatePerIP" => c
            .accept_rate_per_ip
            .map_or(0, |r| r.per_sec as u64)
            .to_string(),
        "AcceptBurstPerIP" => o.accept_burst.to_string(),
        "MaxPause" => show_duration(c.max_pause),
        "ServerMaxGroups" => c.groups.max_groups.to_string(),
        "GroupMaxMembers" => c.groups.max_members.to_string(),
        "VConnMaxGroups" => c.groups.max_per_vconn.to_string(),
        "MemPoolMaxChunk" => show_size(c.pool.max_chunk as u64),
        "MemPoolMinChunk" => show_size(c.pool.min_chunk as u64),
        "MemPoolPageSize" => show_size(c.pool.page_size as u64),
        "ClientAddr" => o.client_addr.clone(),
        "ServerAddr" => o.server_addr.clone(),
        "ClientTlsCert" => path(&o.client_tls, |t| Some(&t.cert_chain)),
        "ClientTlsKey" => path(&o.client_tls, |t| Some(&t.key)),
        "ClientWsTlsCert" => path(&o.ws_tls, |t| Some(&t.cert_chain)),
        "ClientWsTlsKey" => path(&o.ws_tls, |t| Some(&t.key)),
        "ServerTlsCert" => path(&o.server_tls, |t| Some(&t.cert_chain)),
        "ServerTlsKey" => path(&o.server_tls, |t| Some(&t.key)),
        "ServerTlsClientCA" => path(&o.server_tls, |t| t.client_ca.as_deref()),
        "ClientWsAddr" => o.ws_addr.clone().unwrap_or_default(),
        "ClientWsPath" => o.ws_path.clone(),
        "ClientWsOrigins" => o.ws_origins.join(","),
        "MetricsAddr" => o.metrics_addr.clone().unwrap_or_default(),
        "ClientProxyProtocol" => c.client.proxy_protocol.to_string(),
        "ServerProxyProtocol" => c.server.proxy_protocol.to_string(),
        "ClientMaxConn" => c.client.max_vconns.unwrap_or(0).to_string(),
        "ClientBufferSize" => show_size(c.client.buffer_size as u64),
        "ServerBufferSize" => show_size(c.server.buffer_size as u64),
        "ClientIdleTimeout" => show_duration(c.client.idle_timeout),
        "ServerIdleTimeout" => show_duration(c.server.idle_timeout),
        "ClientSendChanSize" => c.client.send_queue_msgs.to_string(),
        "ServerSendChanSize" => c.server.send_queue_msgs.to_string(),
        "ServerAuthKey" | "ServerAuthPassword" => String::from_utf8_lossy(&c.auth_key).into(),
        // The file's name is not kept, only the key read from it.
        "ServerAuthKeyFile" => String::new(),
        "ClientSnetEnable" | "ServerSnetEnable" => o.snet_on[side].to_string(),
        "ClientSnetEncrypt" | "ServerSnetEncrypt" => snet.settings.encrypt.to_string(),
        "ClientSnetBuffer" | "ServerSnetBuffer" => show_size(snet.settings.buffer as u64),
        "ClientSnetInitTimeout" | "ServerSnetInitTimeout" => show_duration(snet.init_timeout),
        "ClientSnetWaitTimeout" | "ServerSnetWaitTimeout" => show_duration(snet.wait_timeout),
        _ => String::new(),
    }
}

/// The text `-help` prints: every flag with its default and meaning.
pub fn usage() -> String {
    let mut s = String::from(
        "Usage of fastway:\n\
         uniway's fastway: a game-server gateway, wire-compatible with the Go fastway.\n\
         Flags use Go syntax: -Name=value, -Name value, --Name=value; a boolean flag\n\
         alone means true. Durations: 30s, 1m30s, 500ms. Sizes: 65536, 64K, 1M.\n\n",
    );
    for f in FLAGS {
        let kind = match f.kind {
            Kind::Bool => "",
            Kind::Size => " size",
            Kind::Count => " int",
            Kind::Duration => " duration",
            Kind::Text => " string",
        };
        s.push_str(&format!("  -{}{kind}\n    \t{}", f.name(), f.help));
        // As Go's flag package: zero values (false, "", 0) are not shown,
        // and only strings are quoted.
        match (f.kind, f.default_value().as_str()) {
            (_, "" | "false" | "0") => {}
            (Kind::Text, d) => s.push_str(&format!(" (default {d:?})")),
            (_, d) => s.push_str(&format!(" (default {d})")),
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, FlagError> {
        match parse(args.iter().map(OsString::from).collect())? {
            Parsed::Run(o) => Ok(*o),
            Parsed::Help => panic!("help"),
        }
    }

    /// Every flag docs/fastway.md's tables list, with the default they
    /// give it (`none` and `empty` written as nothing), read from the page
    /// itself. A row may name several flags: one default each, in order, or
    /// one for all.
    fn documented_defaults() -> Vec<(String, String)> {
        let page = include_str!("../../docs/fastway.md");
        let flags = page
            .split("\n## ")
            .find(|s| s.starts_with("Flags\n"))
            .expect("docs/fastway.md has a Flags section");
        let mut out = Vec::new();
        for line in flags.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            let (Some(first), Some(last)) = (cells.first(), cells.last()) else {
                continue;
            };
            let names: Vec<String> = first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            let values: Vec<String> = last
                .trim()
                .split(", ")
                .map(|v| match v.trim_matches('`') {
                    "none" | "empty" => String::new(),
                    v => v.to_string(),
                })
                .collect();
            for (i, name) in names.into_iter().enumerate() {
                let value = if values.len() == 1 {
                    &values[0]
                } else {
                    &values[i]
                };
                out.push((name, value.clone()));
            }
        }
        out
    }

    #[test]
    fn docs_fastway_md_lists_every_flag_with_the_default_help_prints() {
        let docs = documented_defaults();
        assert!(
            docs.len() >= 48,
            "only {} flags read from the page",
            docs.len()
        );
        for f in FLAGS {
            assert!(
                docs.iter().any(|(n, _)| n == f.name()),
                "-{} is not in docs/fastway.md",
                f.name()
            );
        }
        let text = usage();
        for (name, default) in &docs {
            let flag = find(name).unwrap_or_else(|| {
                panic!("docs/fastway.md lists -{name}, which the command does not take")
            });
            assert_eq!(
                &flag.default_value(),
                default,
                "-{name}: docs/fastway.md and the command disagree on the default"
            );
            let at = text
                .find(&format!("  -{name} "))
                .or_else(|| text.find(&format!("  -{name}\n")))
                .unwrap_or_else(|| panic!("-{name} missing from -help"));
            let entry = &text[at..];
            let entry = &entry[..entry[1..].find("\n  -").map_or(entry.len(), |e| e + 1)];
            let shown = match (flag.kind, default.as_str()) {
                (_, "" | "false" | "0") => None,
                (Kind::Text, d) => Some(format!("(default {d:?})")),
                (_, d) => Some(format!("(default {d})")),
            };
            match shown {
                Some(shown) => assert!(
                    entry.contains(&shown),
                    "-{name}: docs/fastway.md says {default:?}, -help says: {entry}"
                ),
                None => assert!(
                    !entry.contains("(default"),
                    "-{name}: a zero default is not shown, as in Go: {entry}"
                ),
            }
        }
    }

    /// Every default, given back as a flag, changes nothing: what -help
    /// shows is what a bare command runs with.
    #[test]
    fn each_default_given_as_a_flag_is_a_bare_command() {
        let args: Vec<String> = FLAGS
            .iter()
            // A key file needs a file; its default is no file.
            .filter(|f| f.name() != "ServerAuthKeyFile")
            .map(|f| format!("-{}={}", f.name(), f.default_value()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(run(&args).unwrap(), run(&[]).unwrap());
        // And the check can fail: a value other than the default shows.
        assert_ne!(run(&["-MaxPause=4s"]).unwrap(), run(&[]).unwrap());
    }

    #[test]
    fn a_bare_command_runs_with_the_values_of_cli_md() {
        let o = run(&[]).unwrap();
        let c = &o.config;
        assert!(!o.reuse_port);
        assert_eq!(
            (o.client_addr.as_str(), o.server_addr.as_str()),
            (":0", ":0")
        );
        assert_eq!(c.max_packet, 512 * 1024);
        assert_eq!(c.auth_key, b"");
        assert_eq!(
            (
                c.pool.factor,
                c.pool.max_chunk,
                c.pool.min_chunk,
                c.pool.page_size
            ),
            (2, 64 * 1024, 64, 1024 * 1024)
        );
        assert_eq!(c.client.max_vconns, Some(16));
        assert_eq!(c.client.buffer_size, 2 * 1024);
        assert_eq!(c.client.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.client.send_queue_msgs, 1000);
        assert_eq!(c.server.buffer_size, 64 * 1024);
        assert_eq!(c.server.idle_timeout, Duration::from_secs(30));
        assert_eq!(c.server.send_queue_msgs, 100_000);
        assert_eq!((c.client.max_conns, c.server.max_conns), (None, None));
        assert_eq!(c.max_clients_per_ip, None);
        assert_eq!(c.accept_rate_per_ip, None);
        assert_eq!(c.max_partial_bytes, Some(64 << 20));
    }

    #[test]
    fn limits_take_zero_for_none() {
        let o = run(&[
            "-MaxClients=1000",
            "-MaxServers=8",
            "-MaxClientsPerIP=20",
            "-AcceptBurstPerIP=3",
            "-AcceptRatePerIP=5",
        ])
        .unwrap();
        let c = &o.config;
        assert_eq!(
            (c.client.max_conns, c.server.max_conns),
            (Some(1000), Some(8))
        );
        assert_eq!(c.max_clients_per_ip, Some(20));
        assert_eq!(
            c.accept_rate_per_ip,
            Some(AcceptRate {
                per_sec: 5.0,
                burst: 3
            })
        );
        assert_eq!(
            run(&["-MaxClients=0"]).unwrap().config.client.max_conns,
            None
        );
        let e = run(&["-AcceptRatePerIP=5", "-AcceptBurstPerIP=0"])
            .unwrap_err()
            .0;
        assert!(e.contains("-AcceptBurstPerIP"), "{e}");
    }

    #[test]
    fn go_syntax_forms() {
        let o = run(&[
            "-ClientAddr=127.0.0.1:4000",
            "-ServerAddr",
            "127.0.0.1:4001",
            "--MaxPacket=1M",
            "-ReusePort",
            "-ClientIdleTimeout=1m30s",
            "-ServerAuthPassword",
            "pw",
            "-ClientMaxConn=4",
            "-ServerBufferSize=128K",
        ])
        .unwrap();
        assert_eq!(o.client_addr, "127.0.0.1:4000");
        assert_eq!(o.server_addr, "127.0.0.1:4001");
        assert_eq!(o.config.max_packet, 1 << 20);
        assert!(o.reuse_port);
        assert_eq!(o.config.client.idle_timeout, Duration::from_secs(90));
        assert_eq!(o.config.auth_key, b"pw");
        assert_eq!(o.config.client.max_vconns, Some(4));
        assert_eq!(o.config.server.buffer_size, 128 * 1024);
        assert!(!run(&["-ReusePort=false"]).unwrap().reuse_port);
        assert_eq!(run(&["-ServerAuthKey=k"]).unwrap().config.auth_key, b"k");
        // `-Name=` is the empty value, as in Go.
        let o = run(&["-ServerAuthKey=k", "-ServerAuthKey=", "-ClientWsOrigins="]).unwrap();
        assert_eq!(o.config.auth_key, b"");
        assert!(o.ws_origins.is_empty());
        // A later occurrence wins, as in Go.
        assert_eq!(
            run(&["-ClientMaxConn=2", "-ClientMaxConn=3"])
                .unwrap()
                .config
                .client
                .max_vconns,
            Some(3)
        );
    }

    #[test]
    fn help_forms() {
        for h in ["-h", "-help", "--help", "--h"] {
            assert_eq!(parse(vec![OsString::from(h)]), Ok(Parsed::Help));
        }
        let text = usage();
        for f in FLAGS {
            assert!(text.contains(&format!("-{}", f.name())), "{}", f.name());
        }
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let cases = [
            (&["-Nope"][..], "-Nope"),
            (&["-MaxPacket=lots"], "-MaxPacket"),
            (&["-MaxPacket=8G"], "-MaxPacket"),
            (&["-ClientIdleTimeout=30"], "-ClientIdleTimeout"),
            (&["-ClientIdleTimeout=0s"], "-ClientIdleTimeout"),
            (&["-ReusePort=maybe"], "-ReusePort"),
            (&["-MemPoolType=heap"], "-MemPoolType"),
            (&["-ClientAddr"], "-ClientAddr"),
            (&["-ClientMaxConn=0"], "ClientMaxConn"),
            (&["-MemPoolFactor=1"], "MemPoolFactor"),
            (&["-ClientSnetEnable=maybe"], "-ClientSnetEnable"),
            (&["-ServerSnetWaitTimeout=0s"], "-ServerSnetWaitTimeout"),
            (
                &["-ClientSnetEnable", "-ClientProxyProtocol"],
                "ClientSnetEnable",
            ),
            (&["stray"], "stray"),
        ];
        for (args, name) in cases {
            let e = run(args).unwrap_err();
            assert!(e.0.contains(name), "{args:?}: {e}");
            assert!(!e.0.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn the_key_comes_from_a_flag_a_file_or_the_environment() {
        let env = |args: &[&str], key: Option<&str>| {
            let args = args.iter().map(OsString::from).collect();
            match parse_with_env(args, key.map(OsString::from)) {
                Ok(Parsed::Run(o)) => Ok(o.config.auth_key),
                Ok(Parsed::Help) => panic!("help"),
                Err(e) => Err(e.0),
            }
        };
        let dir = std::env::temp_dir().join(format!("uniway-keyfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("key");
        std::fs::write(&file, "from-file\n").unwrap();
        let file_flag = format!("-ServerAuthKeyFile={}", file.display());

        assert_eq!(env(&[&file_flag], None).unwrap(), b"from-file");
        assert_eq!(env(&[], Some("from-env")).unwrap(), b"from-env");
        // A flag wins over the environment, and so does a file.
        assert_eq!(env(&["-ServerAuthKey=flag"], Some("env")).unwrap(), b"flag");
        assert_eq!(env(&[&file_flag], Some("env")).unwrap(), b"from-file");
        assert_eq!(env(&[], None).unwrap(), b"");
        let both = env(&["-ServerAuthKey=k", &file_flag], None).unwrap_err();
        assert!(
            both.contains("-ServerAuthKeyFile") && both.contains("-ServerAuthKey"),
            "{both}"
        );
        let missing = dir.join("nope");
        let e = env(
            &[&format!("-ServerAuthKeyFile={}", missing.display())],
            None,
        )
        .unwrap_err();
        assert!(
            e.contains("-ServerAuthKeyFile") && e.contains("nope"),
            "{e}"
        );
        std::fs::write(&file, "\n").unwrap();
        let e = env(&[&file_flag], None).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn websocket_flags() {
        let o = run(&[
            "-ClientWsAddr=:8080",
            "-ClientWsPath=/play",
            "-ClientWsOrigins=https://a.example, https://b.example",
        ])
        .unwrap();
        assert_eq!(o.ws_addr.as_deref(), Some(":8080"));
        assert_eq!(o.ws_path, "/play");
        assert_eq!(o.ws_origins, ["https://a.example", "https://b.example"]);
        assert_eq!(run(&[]).unwrap().ws_addr, None);
        let e = run(&["-ClientWsAddr=:8080", "-ClientWsPath=play"])
            .unwrap_err()
            .0;
        assert!(e.contains("-ClientWsPath"), "{e}");
        let e = run(&["-ClientWsTlsCert=c", "-ClientWsTlsKey=k"])
            .unwrap_err()
            .0;
        assert!(e.contains("-ClientWsAddr"), "{e}");
    }

    #[test]
    fn tls_flags_come_in_pairs() {
        let o = run(&["-ClientTlsCert=c.pem", "-ClientTlsKey=k.pem"]).unwrap();
        assert_eq!(
            o.client_tls,
            Some(TlsFiles {
                cert_chain: "c.pem".into(),
                key: "k.pem".into(),
                client_ca: None
            })
        );
        assert_eq!(o.server_tls, None);
        let e = run(&["-ClientTlsCert=c.pem"]).unwrap_err().0;
        assert!(e.contains("-ClientTlsKey"), "{e}");
        let e = run(&["-ServerTlsKey=k.pem"]).unwrap_err().0;
        assert!(e.contains("-ServerTlsCert"), "{e}");
        let e = run(&["-ServerTlsClientCA=ca.pem"]).unwrap_err().0;
        assert!(e.contains("-ServerTlsCert"), "{e}");
        let o = run(&[
            "-ServerTlsCert=c",
            "-ServerTlsKey=k",
            "-ServerTlsClientCA=ca",
        ])
        .unwrap();
        assert_eq!(o.server_tls.unwrap().client_ca, Some("ca".into()));
    }

    #[test]
    fn a_rule_between_two_flags_names_the_one_the_user_set() {
        let e = run(&["-MemPoolMinChunk=128K"]).unwrap_err().0;
        assert!(e.starts_with("invalid flag -MemPoolMinChunk:"), "{e}");
        let e = run(&["-MemPoolMaxChunk=32"]).unwrap_err().0;
        assert!(e.starts_with("invalid flag -MemPoolMaxChunk:"), "{e}");
        let e = run(&["-MemPoolPageSize=32K"]).unwrap_err().0;
        assert!(e.starts_with("invalid flag -MemPoolPageSize:"), "{e}");
        let e = run(&["-MemPoolMaxChunk=2M"]).unwrap_err().0;
        assert!(e.starts_with("invalid flag -MemPoolMaxChunk:"), "{e}");
    }
}
