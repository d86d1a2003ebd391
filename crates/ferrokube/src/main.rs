fn main() {
    std::process::exit(ferrokube::main_with_args(std::env::args_os()));
}
