package com.example;

public class App {
    public static void main(String[] args) {
        System.out.println("Hello from a JRE-only image built by minibuild!");
        System.out.println("Maven and the JDK stayed in the build stage.");
    }
}
