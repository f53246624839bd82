fn main() { /* written by the seal work in progress */
}
