//! azsim
