//! Errors: one [`AttributeError`] per problem, collected in
//! [`AttributeErrors`].

use std::fmt;

use crate::limits;

/// One problem with the volume attributes. Every variant names the attribute;
/// values in it are already quoted, shortened and, for secrets, redacted, so
/// the error can be shown or logged as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AttributeError {
    /// A required attribute is missing or empty.
    #[error("{attribute} is required: {hint}")]
    Required {
        /// The attribute key.
        attribute: String,
        /// What to set it to.
        hint: String,
    },
    /// The value is not accepted.
    #[error("{attribute}={value}: {problem}; {accepted}")]
    Invalid {
        /// The attribute key.
        attribute: String,
        /// The value, quoted and shortened (or `<redacted>`).
        value: String,
        /// What is wrong with it.
        problem: String,
        /// What is accepted instead.
        accepted: String,
    },
    /// A `csi.cert-manager.io/*` key (or a near miss of one) that this driver
    /// does not know.
    #[error("{attribute} is not a known attribute{}", suggestion_text(.suggestion))]
    Unknown {
        /// The key as written.
        attribute: String,
        /// The known key it most resembles, if any is close.
        suggestion: Option<String>,
    },
    /// The value is fine alone but not together with another attribute.
    #[error("{attribute}: {problem}")]
    Conflict {
        /// The attribute key.
        attribute: String,
        /// What conflicts and how to resolve it.
        problem: String,
    },
    /// A size or count limit is exceeded.
    #[error("{attribute}: {problem}")]
    TooLarge {
        /// The attribute key.
        attribute: String,
        /// Which limit and by how much.
        problem: String,
    },
}

fn suggestion_text(suggestion: &Option<String>) -> String {
    match suggestion {
        Some(s) => format!("; did you mean {s}?"),
        None => format!(
            "; the {} attributes are listed in the driver's documentation",
            crate::keys::PREFIX
        ),
    }
}

impl AttributeError {
    /// The attribute key the problem is about.
    pub fn attribute(&self) -> &str {
        match self {
            AttributeError::Required { attribute, .. }
            | AttributeError::Invalid { attribute, .. }
            | AttributeError::Unknown { attribute, .. }
            | AttributeError::Conflict { attribute, .. }
            | AttributeError::TooLarge { attribute, .. } => attribute,
        }
    }
}

/// Every problem found in a volume context, in attribute order.
///
/// Its `Display` is one message for `kubectl describe pod`; iterate it for the
/// individual [`AttributeError`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeErrors {
    errors: Vec<AttributeError>,
}

impl AttributeErrors {
    pub(crate) fn new(errors: Vec<AttributeError>) -> Self {
        AttributeErrors { errors }
    }

    /// The individual problems.
    pub fn iter(&self) -> std::slice::Iter<'_, AttributeError> {
        self.errors.iter()
    }

    /// How many problems there are (at least one).
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always false: an `AttributeErrors` holds at least one problem.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// The problems as a slice.
    pub fn as_slice(&self) -> &[AttributeError] {
        &self.errors
    }

    /// Whether any problem is about `attribute`.
    pub fn mentions(&self, attribute: &str) -> bool {
        self.errors.iter().any(|e| e.attribute() == attribute)
    }
}

impl fmt::Display for AttributeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [] => f.write_str("invalid volume attributes"),
            [one] => write!(f, "invalid volume attribute: {one}"),
            many => {
                write!(f, "invalid volume attributes ({} problems): ", many.len())?;
                for (i, e) in many.iter().take(limits::MAX_ERRORS_SHOWN).enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "({}) {e}", i + 1)?;
                }
                if many.len() > limits::MAX_ERRORS_SHOWN {
                    write!(f, "; and {} more", many.len() - limits::MAX_ERRORS_SHOWN)?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for AttributeErrors {}

impl<'a> IntoIterator for &'a AttributeErrors {
    type Item = &'a AttributeError;
    type IntoIter = std::slice::Iter<'a, AttributeError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}

impl IntoIterator for AttributeErrors {
    type Item = AttributeError;
    type IntoIter = std::vec::IntoIter<AttributeError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.into_iter()
    }
}

/// Quotes a value for an error message, shortened to
/// [`limits::MAX_QUOTED_CHARS`] characters, with control characters escaped.
pub(crate) fn quote(value: &str) -> String {
    let mut chars = value.chars();
    let head: String = chars.by_ref().take(limits::MAX_QUOTED_CHARS).collect();
    if chars.next().is_some() {
        format!("{head:?}... ({} bytes)", value.len())
    } else {
        format!("{head:?}")
    }
}

/// What an error shows instead of a secret value.
pub(crate) const REDACTED: &str = "<redacted>";
