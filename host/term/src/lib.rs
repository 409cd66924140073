//! What the command-line tools (`flynn-host`, `flynn`) share at a person's terminal:
//! aligned tables and relative times ([`table`]), and interactive sessions on the attach
//! protocol ([`attach`]).

pub mod attach;
pub mod table;
