fn main() {
    // Rebuild when bpf-linker changes (it is what links the object).
    if let Ok(path) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
