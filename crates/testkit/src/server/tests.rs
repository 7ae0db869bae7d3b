use super::*;

#[test]
fn query_decoding() {
    let q = parse_query(Some("labelSelector=a%3D1%2Cb+in+%28x%29&watch=true&x"));
    assert_eq!(q["labelSelector"], "a=1,b in (x)");
    assert_eq!(q["watch"], "true");
    assert_eq!(q["x"], "");
}

#[test]
fn routes() {
    assert!(matches!(route("/version"), Target::Version));
    assert!(matches!(
        route("/apis/cert-manager.io/v1/certificaterequests"),
        Target::Collection { ns: None }
    ));
    assert!(matches!(
        route("/apis/cert-manager.io/v1/namespaces/a/certificaterequests/b/status"),
        Target::Object { status: true, .. }
    ));
    assert!(matches!(route("/api/v1/pods"), Target::NotFound));
    assert!(matches!(
        route("/apis/events.k8s.io/v1/namespaces/a/events"),
        Target::Events { ns } if ns == "a"
    ));
    assert!(matches!(
        route("/apis/events.k8s.io/v1/namespaces/a/events/p.1"),
        Target::Event { ns, name } if ns == "a" && name == "p.1"
    ));
}
