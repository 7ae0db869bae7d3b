use super::request::validate;
use super::*;

#[test]
fn generated_names_are_valid_and_unique() {
    let long = "a".repeat(300);
    for pod in ["my-app-7d9f", "My.App", "", "--x--", long.as_str()] {
        let a = generate_name(pod).unwrap();
        let b = generate_name(pod).unwrap();
        assert_ne!(a, b);
        assert!(a.len() <= 63, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.'),
            "{a}"
        );
        assert!(a.starts_with(|c: char| c.is_ascii_alphanumeric()), "{a}");
    }
    assert!(
        generate_name("my-app-7d9f")
            .unwrap()
            .starts_with("my-app-7d9f-")
    );
}

#[test]
fn validation_lists_every_problem() {
    let err = validate(&NewRequest::default()).unwrap_err().to_string();
    for part in ["namespace", "volume id", "pod name", "issuer name", "CSR"] {
        assert!(err.contains(part), "{err}");
    }
}
