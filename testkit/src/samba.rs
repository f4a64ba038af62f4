//! Samba AD DC harness (see ad/ and issue 5).
