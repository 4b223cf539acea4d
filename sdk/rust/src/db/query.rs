//! Query variables.

/// One variable of a named query; only its position and value reach the database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryArg {
    pub name: String,
    pub value: String,
}

impl QueryArg {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        QueryArg { name: name.into(), value: value.into() }
    }
}
