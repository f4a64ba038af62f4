//! A CoreDNS Corefile reader, just enough to answer one question: does some server block
//! forward the AD root domain to the domain's DNS server?
//!
//! With `--gmsa-dns-server` and `--gmsa-root-domain-name` AKS adds this block to the
//! `Corefile` key of `kube-system/coredns` (seed `000_…`):
//!
//! ```text
//! contoso.com:53 {
//!     errors
//!     cache 30
//!     log
//!     forward . 10.0.0.4
//! }
//! ```
//!
//! Operators who configure it themselves use the `kube-system/coredns-custom` ConfigMap, whose
//! `*.server` keys hold whole server blocks in the same syntax; both are parsed here.
//! A forward also counts when written inside the root zone (`.:53 { forward contoso.com 10.0.0.4 }`),
//! or when the root zone forwards everything to that server (`.:53 { forward . 10.0.0.4 }`).

use std::net::IpAddr;

/// One `zone... { directives }` server block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerBlock {
    /// The block's keys as written (`contoso.com:53`, `.:53`, `dns://example.org`).
    pub keys: Vec<String>,
    /// Top-level directives of the block; nested plugin blocks are skipped.
    pub directives: Vec<Directive>,
}

/// One directive line: plugin name and arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
}

/// A Corefile that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorefileError {
    /// A `}` without a matching `{`.
    #[error("Corefile line {line}: unexpected '}}'")]
    UnexpectedClose { line: usize },
    /// The text ended inside a block.
    #[error("Corefile: block opened on line {line} is never closed")]
    Unclosed { line: usize },
    /// Server block keys without a body.
    #[error("Corefile line {line}: server block keys without '{{'")]
    MissingBody { line: usize },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Word(String),
    Open,
    Close,
}

/// Splits into tokens with their line numbers; `#` starts a comment, quotes group words.
fn tokenize(text: &str) -> Vec<(usize, Token)> {
    let mut tokens = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let mut chars = line.chars().peekable();
        let mut word = String::new();
        let flush = |word: &mut String, tokens: &mut Vec<(usize, Token)>| {
            if !word.is_empty() {
                tokens.push((line_number, Token::Word(std::mem::take(word))));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '#' if word.is_empty() => break,
                '"' => {
                    for quoted in chars.by_ref() {
                        if quoted == '"' {
                            break;
                        }
                        word.push(quoted);
                    }
                }
                '{' => {
                    flush(&mut word, &mut tokens);
                    tokens.push((line_number, Token::Open));
                }
                '}' => {
                    flush(&mut word, &mut tokens);
                    tokens.push((line_number, Token::Close));
                }
                c if c.is_whitespace() => flush(&mut word, &mut tokens),
                c => word.push(c),
            }
        }
        flush(&mut word, &mut tokens);
    }
    tokens
}

/// Parses a Corefile into its server blocks (snippets `(name) { … }` are returned as blocks too
/// and never match a zone).
pub fn parse(text: &str) -> Result<Vec<ServerBlock>, CorefileError> {
    let tokens = tokenize(text);
    let mut blocks = Vec::new();
    let mut position = 0;
    while position < tokens.len() {
        let mut keys = Vec::new();
        let start_line = tokens[position].0;
        // A top-level `import` line pulls in other files; it is not a server block.
        if matches!(&tokens[position].1, Token::Word(word) if word == "import") {
            while matches!(tokens.get(position), Some((line, Token::Word(_))) if *line == start_line) {
                position += 1;
            }
            continue;
        }
        while let Some((_, Token::Word(word))) = tokens.get(position) {
            keys.extend(word.split(',').filter(|key| !key.is_empty()).map(str::to_string));
            position += 1;
        }
        match tokens.get(position) {
            Some((_, Token::Open)) => position += 1,
            Some((line, Token::Close)) => return Err(CorefileError::UnexpectedClose { line: *line }),
            _ => return Err(CorefileError::MissingBody { line: start_line }),
        }
        let mut directives = Vec::new();
        loop {
            match tokens.get(position) {
                None => return Err(CorefileError::Unclosed { line: start_line }),
                Some((_, Token::Close)) => {
                    position += 1;
                    break;
                }
                Some((line, Token::Open)) => return Err(CorefileError::MissingBody { line: *line }),
                Some((line, Token::Word(name))) => {
                    let line = *line;
                    let mut directive = Directive { name: name.clone(), args: Vec::new() };
                    position += 1;
                    while let Some((arg_line, Token::Word(arg))) = tokens.get(position) {
                        if *arg_line != line {
                            break;
                        }
                        directive.args.push(arg.clone());
                        position += 1;
                    }
                    if let Some((open_line, Token::Open)) = tokens.get(position)
                        && *open_line == line
                    {
                        position = skip_block(&tokens, position + 1, line)?;
                    }
                    directives.push(directive);
                }
            }
        }
        blocks.push(ServerBlock { keys, directives });
    }
    Ok(blocks)
}

/// Skips a nested `{ … }` whose `{` was just consumed; returns the position after its `}`.
fn skip_block(tokens: &[(usize, Token)], mut position: usize, open_line: usize) -> Result<usize, CorefileError> {
    let mut depth = 1;
    while depth > 0 {
        match tokens.get(position) {
            None => return Err(CorefileError::Unclosed { line: open_line }),
            Some((_, Token::Open)) => depth += 1,
            Some((_, Token::Close)) => depth -= 1,
            Some(_) => {}
        }
        position += 1;
    }
    Ok(position)
}

/// The zone of a server block key if it listens on DNS port 53 (`contoso.com:53`,
/// `dns://contoso.com`), lowercase without a trailing dot; `.` for the root zone.
fn zone_on_port_53(key: &str) -> Option<String> {
    let key = key.strip_prefix("dns://").unwrap_or(key);
    if key.contains("://") {
        return None;
    }
    let zone = match key.rsplit_once(':') {
        Some((zone, "53")) => zone,
        Some(_) => return None,
        None => key,
    };
    Some(normalize_zone(zone))
}

fn normalize_zone(zone: &str) -> String {
    let lower = zone.to_ascii_lowercase();
    match lower.trim_end_matches('.') {
        "" => ".".to_string(),
        trimmed => trimmed.to_string(),
    }
}

/// True when a `forward` destination (`10.0.0.4`, `10.0.0.4:53`, `dns://10.0.0.4`) is `server`
/// on port 53.
fn destination_is(destination: &str, server: IpAddr) -> bool {
    let destination = destination.strip_prefix("dns://").unwrap_or(destination);
    if let Ok(ip) = destination.parse::<IpAddr>() {
        return ip == server;
    }
    match destination.parse::<std::net::SocketAddr>() {
        Ok(socket) => socket.ip() == server && socket.port() == 53,
        Err(_) => false,
    }
}

/// True when one of `blocks` forwards queries for `root_domain` to `server`.
pub fn forwards_domain(blocks: &[ServerBlock], root_domain: &str, server: IpAddr) -> bool {
    let root_domain = normalize_zone(root_domain);
    blocks.iter().any(|block| {
        let zones: Vec<String> = block.keys.iter().filter_map(|key| zone_on_port_53(key)).collect();
        let serves_domain = zones.contains(&root_domain);
        let serves_root = zones.iter().any(|zone| zone == ".");
        block.directives.iter().filter(|directive| directive.name == "forward").any(|forward| {
            let Some((from, destinations)) = forward.args.split_first() else {
                return false;
            };
            let from = normalize_zone(from);
            let covers = (serves_domain || serves_root) && (from == "." || from == root_domain);
            covers && destinations.iter().any(|destination| destination_is(destination, server))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKS_COREFILE: &str = r#"
.:53 {
    errors
    ready
    health {
      lameduck 5s
    }
    kubernetes cluster.local in-addr.arpa ip6.arpa {
      pods insecure
      fallthrough in-addr.arpa ip6.arpa
      ttl 30
    }
    prometheus :9153
    forward . /etc/resolv.conf
    cache 30
    loop
    reload
    loadbalance
    import custom/*.override
}
import custom/*.server
contoso.com:53 {
    errors
    cache 30
    log
    forward . 10.0.0.4
}
"#;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn aks_gmsa_block_is_found() {
        let blocks = parse(AKS_COREFILE).unwrap();
        assert_eq!(blocks.len(), 2, "{blocks:?}");
        assert_eq!(blocks[1].keys, ["contoso.com:53"]);
        assert!(forwards_domain(&blocks, "contoso.com", ip("10.0.0.4")));
        assert!(forwards_domain(&blocks, "Contoso.COM.", ip("10.0.0.4")));
    }

    #[test]
    fn other_server_other_domain_or_other_port_do_not_count() {
        let blocks = parse(AKS_COREFILE).unwrap();
        assert!(!forwards_domain(&blocks, "contoso.com", ip("10.0.0.5")));
        assert!(!forwards_domain(&blocks, "fabrikam.com", ip("10.0.0.4")));
        let other_port = parse("contoso.com:5353 {\n forward . 10.0.0.4\n}\n").unwrap();
        assert!(!forwards_domain(&other_port, "contoso.com", ip("10.0.0.4")));
        let other_port_destination = parse("contoso.com {\n forward . 10.0.0.4:5353\n}\n").unwrap();
        assert!(!forwards_domain(&other_port_destination, "contoso.com", ip("10.0.0.4")));
    }

    #[test]
    fn custom_server_key_and_root_zone_forward_forms_count() {
        let custom = parse("dns://contoso.com {\n  forward . dns://10.0.0.4 10.0.0.5:53 # two DCs\n}").unwrap();
        assert!(forwards_domain(&custom, "contoso.com", ip("10.0.0.5")));
        let in_root = parse(".:53 {\n forward contoso.com 10.0.0.4\n}").unwrap();
        assert!(forwards_domain(&in_root, "contoso.com", ip("10.0.0.4")));
        let root_forward_all = parse(".:53 {\n forward . 10.0.0.4\n}").unwrap();
        assert!(forwards_domain(&root_forward_all, "contoso.com", ip("10.0.0.4")));
        assert!(!forwards_domain(&root_forward_all, "contoso.com", ip("10.0.0.9")));
    }

    #[test]
    fn unbalanced_braces_are_errors_with_lines() {
        assert_eq!(parse(".:53 {\n errors\n"), Err(CorefileError::Unclosed { line: 1 }));
        assert_eq!(parse("}\n"), Err(CorefileError::UnexpectedClose { line: 1 }));
        assert_eq!(parse("contoso.com:53\n"), Err(CorefileError::MissingBody { line: 1 }));
    }
}
