package com.example;

import org.junit.jupiter.api.Test;

class AppTest {
    @Test
    void mainRuns() {
        App.main(new String[0]);
    }
}
