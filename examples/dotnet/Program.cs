// A console program: top-level statements (C# 9+).
Console.WriteLine("Hello from an ASP.NET Core runtime image built by minibuild!");
Console.WriteLine("The .NET SDK stayed in the build stage.");
