//! Trusted tags through TUF (being written).
