/* heads (impl): placeholder */
