//! Bind values for SQL built at run time (multi-row upserts, filtered lists), applied to a
//! query of either backend by [`bind_all!`].

/// One positional parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    I64(i64),
    OptI32(Option<i32>),
    F64(f64),
    Bool(bool),
    Text(String),
    OptText(Option<String>),
    Str(&'static str),
}

/// Binds every value of `$binds` (an iterator of [`Bind`]) to `$query`, in order.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut query = $query;
        for value in $binds {
            query = match value {
                $crate::db::binds::Bind::I64(v) => query.bind(v),
                $crate::db::binds::Bind::OptI32(v) => query.bind(v),
                $crate::db::binds::Bind::F64(v) => query.bind(v),
                $crate::db::binds::Bind::Bool(v) => query.bind(v),
                $crate::db::binds::Bind::Text(v) => query.bind(v),
                $crate::db::binds::Bind::OptText(v) => query.bind(v),
                $crate::db::binds::Bind::Str(v) => query.bind(v),
            };
        }
        query
    }};
}
pub(crate) use bind_all;

/// `($1, $2, …), (…)` for `rows` rows of `columns` parameters, numbered from `first`.
pub fn values_list(rows: usize, columns: usize, first: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    let mut n = first;
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for col in 0..columns {
            if col > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&n.to_string());
            n += 1;
        }
        sql.push(')');
    }
    sql
}

/// Rows per multi-row statement so it stays under both engines' parameter limits (SQLite's
/// 32,766 is the lower).
pub fn chunk_rows(columns: usize) -> usize {
    (30_000 / columns).clamp(1, 500)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_lists_number_parameters_in_order() {
        assert_eq!(values_list(2, 3, 1), "($1, $2, $3), ($4, $5, $6)");
        assert_eq!(values_list(1, 2, 5), "($5, $6)");
        assert_eq!(chunk_rows(27), 500);
        assert!(chunk_rows(27) * 27 <= 32_766);
    }
}
