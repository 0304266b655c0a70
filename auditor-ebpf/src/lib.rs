#![no_std]
// This file exists so that auditor can name this crate as a build dependency (see aya-build).
