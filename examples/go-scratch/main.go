package main

import "fmt"

func main() {
	fmt.Println("Hello from a FROM scratch image built by minibuild!")
	fmt.Println("Only this one file is in the final image.")
}
