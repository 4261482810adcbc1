import { useState } from 'react'
import logo from './assets/logo.svg'

export default function App() {
  const [count, setCount] = useState(0)
  return (
    <main>
      <img src={logo} className="logo" alt="minibuild logo" />
      <h1>Built by minibuild, served by nginx</h1>
      <button onClick={() => setCount((c) => c + 1)}>count is {count}</button>
    </main>
  )
}
