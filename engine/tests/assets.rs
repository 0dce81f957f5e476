//! The `serve` folder on the client listener: files for every path that is not a party
//! path, with content types and ETags, `index.html` for `/`, nothing outside the folder
//! however the path is spelled, and party paths unaffected.

mod common;

use common::*;
use partyline::Server;

#[test]
fn a_serve_folder_is_served_beside_the_parties() {
    let dir = data_dir();
    let public = dir.join("public");
    std::fs::create_dir_all(public.join("js")).unwrap();
    std::fs::write(public.join("index.html"), "<!doctype html><p>hello</p>").unwrap();
    std::fs::write(public.join("js/app.js"), "console.log(1)").unwrap();
    std::fs::write(dir.join("secret.txt"), "not for you").unwrap();
    let config = partyline::Config { serve: Some(public), data: dir.join("data"), ..config(2) };
    let (srv, addr) = start(Server::new(config).with_builtin_parties());

    let page = raw_http(addr, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("content-type: text/html; charset=utf-8"), "{page}");
    assert!(page.ends_with("<!doctype html><p>hello</p>"), "{page}");
    let etag =
        page.lines().find_map(|l| l.strip_prefix("etag: ")).expect("an etag").trim().to_owned();
    let again =
        format!("GET / HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n");
    assert!(raw_http(addr, again.as_bytes()).starts_with("HTTP/1.1 304"));
    let head = raw_http(addr, b"HEAD /js/app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("text/javascript"), "{head}");
    assert!(!head.contains("console.log"), "HEAD has no body: {head}");
    for outside in ["/../secret.txt", "/%2e%2e/secret.txt", "/js/..%2f..%2fsecret.txt", "/nothing"]
    {
        let request = format!("GET {outside} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let answer = raw_http(addr, request.as_bytes());
        assert!(!answer.contains("not for you"), "{outside}: {answer}");
        assert!(
            answer.starts_with("HTTP/1.1 404") || answer.starts_with("HTTP/1.1 400"),
            "{outside}: {answer}"
        );
    }
    // Party paths are the parties'.
    assert_eq!(http(addr, "GET", "/parties/main/lobby", "").0, 200);
    srv.shutdown().unwrap();
}

/// SIGHUP's reload (`RunningServer::reload_static`): changed and new files are served with
/// new ETags; a folder that no longer reads keeps the files served so far.
#[test]
fn a_reload_serves_the_folder_as_it_is_now_and_a_broken_one_changes_nothing() {
    let dir = data_dir();
    let public = dir.join("public");
    std::fs::create_dir_all(&public).unwrap();
    std::fs::write(public.join("a.txt"), "first").unwrap();
    let config =
        partyline::Config { serve: Some(public.clone()), data: dir.join("data"), ..config(2) };
    let (srv, addr) = start(Server::new(config).with_builtin_parties());
    let get = |path: &str| {
        let answer = raw_http(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let etag = answer.lines().find_map(|l| l.strip_prefix("etag: ")).map(str::to_owned);
        (answer, etag)
    };
    let (before, etag_before) = get("/a.txt");
    assert!(before.ends_with("first"), "{before}");
    std::fs::write(public.join("a.txt"), "second").unwrap();
    std::fs::write(public.join("b.txt"), "new").unwrap();
    assert!(get("/a.txt").0.ends_with("first"), "served from memory until a reload");
    assert_eq!(srv.reload_static(), Ok(Some(2)));
    let (after, etag_after) = get("/a.txt");
    assert!(after.ends_with("second"), "{after}");
    assert_ne!(etag_before, etag_after, "a changed file has a new ETag");
    assert!(get("/b.txt").0.ends_with("new"));
    // The folder gone: the reload fails and what was served stays.
    std::fs::remove_dir_all(&public).unwrap();
    assert!(srv.reload_static().is_err());
    assert!(get("/b.txt").0.ends_with("new"));
    srv.shutdown().unwrap();
}
